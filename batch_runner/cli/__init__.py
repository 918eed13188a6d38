"""The command line: parsing in ``main``, one module per command group, one renderer."""
