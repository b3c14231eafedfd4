"""Scenarios (validated bundles of all tables), their files, and the runs made on them."""
