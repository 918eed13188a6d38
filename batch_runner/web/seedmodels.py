"""Seed 001's request and response shapes (its README's "API 仕様"), field for field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

SeedStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
Scalar = str | int | float | bool


class SeedJobRequest(BaseModel):
    """``POST /jobs``: an HTTP call to make, and how to retry it."""

    method: str = Field("GET", description="GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")
    url: str
    headers: dict[str, Scalar] | None = None
    params: dict[str, Scalar] | None = None
    body: Any = Field(None, description="a string is sent as it is; any other value as JSON")
    timeout_sec: float | None = Field(None, description="seconds per attempt; default 30")
    priority: int = Field(0, description="higher starts first")
    max_attempts: int = 1
    backoff_strategy: Literal["exponential", "fixed", "constant"] = Field(
        "exponential", description="constant is fixed"
    )
    backoff_seconds: float | None = Field(None, description="default 30")
    scheduled_at: datetime | None = Field(
        None, description="not before this time (ISO 8601; without an offset: UTC)"
    )
    ttl_seconds: int | None = Field(
        None, ge=0, description="kept with the job; informational (retention is `clean`'s)"
    )
    tags: list[str] | None = None


class SeedQueued(BaseModel):
    job_id: str
    status: Literal["queued"]


class SeedJob(BaseModel):
    """``GET /jobs/{job_id}``: a job's state and parameters; times in UTC (``...Z``)."""

    job_id: str
    status: SeedStatus
    attempt: int = Field(description="the attempt running or last run; 0 before the first")
    max_attempts: int
    priority: int
    scheduled_at: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    method: str
    url: str = Field(description="credentials in it shown as ***")
    timeout_sec: int | float
    tags: list[str]


class SeedResult(BaseModel):
    """``GET /jobs/{job_id}/result``: the HTTP response of the job's last attempt."""

    job_id: str
    status: SeedStatus
    response_status: int | None
    response_headers: dict[str, str] | None = Field(description="secret headers masked")
    response_body: Any = Field(description="parsed when the response was JSON, else text")
    error: str | None
    duration_ms: int | None


class SeedJobList(BaseModel):
    """``GET /jobs``: a page of jobs, the latest queued first."""

    jobs: list[SeedJob]
    limit: int
    offset: int
    next_offset: int | None = Field(description="the next page's offset; null on the last")
    next_cursor: str | None = Field(description="the next page's cursor; null on the last")
