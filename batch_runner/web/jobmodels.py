"""The jobs API's response shapes: a job as ``list --json`` shows it plus its schedule in words,
zone and lane, and an attempt as its JSONL line holds it (SPEC 7)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Job(BaseModel):
    """One job of the config, with what the state database knows of it."""

    name: str
    enabled: bool = Field(description="the file's value; a disable by failures is said apart")
    schedule_type: str
    schedule_time: str | None
    schedule: str = Field(description="the schedule in words, with the job's zone when it has one")
    timezone: str | None = Field(description="the job's IANA zone; null: the system's")
    lane: str
    next_run: str | None
    last_run: str | None
    last_status: str | None
    error_count: int
    disabled_reason: str | None = Field(
        description="why the job's failures disabled it (disable_after); null unless they did"
    )
    disabled_at: str | None


class ResultRecord(BaseModel):
    """One finished attempt, as its line in ``logs/batch/batch_YYYYMMDD.jsonl`` holds it; an
    HTTP attempt's line has ``response_status``, ``response_headers``, ``response_body`` too."""

    model_config = ConfigDict(extra="allow")

    job_name: str
    start_time: str | None = None
    end_time: str | None = None
    status: str
    output: str | None = None
    error: str | None = None
    run_id: str | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    exit_code: int | None = None
    duration_seconds: float | None = None
    trigger: str | None = None
    scheduled_for: str | None = None
    output_truncated: bool | None = None
    log_file: str | None = None
    host: str | None = None
    pid: int | None = None


class JobDetail(Job):
    runs: list[ResultRecord] = Field(description="its last 20 attempts, the latest first")


class EnabledChange(BaseModel):
    """What an enable or disable did."""

    name: str
    enabled: bool
    edited: bool = Field(description="whether the config file was edited")
    cleared: bool = Field(description="whether a disable by the job's failures was lifted")
