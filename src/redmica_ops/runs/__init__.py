"""Runs: one job per tenant (migrations), paced, recorded in S3, resumable."""
