"""Prometheus metrics of the API process: ``GET /metrics`` (router.py), HTTP requests by route template
(http.py) and what the database knows, read at scrape time (collector.py, SQL in repository.py)."""
