"""Capture: record what clients send (the proxy, NDJSON ingest, HAR import). Secrets never stored."""
