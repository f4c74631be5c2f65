"""The serving phase: the replay's personalization behind a web service, with live server-sent updates and a shop page.

One job per module; only `stage` reads files:

- `service`: pages, ingestion, books and per-customer feeds on the replay's profile store, processor and personalizer;
- `app`: the FastAPI routes, request validation, the body limit, server-sent events and the registry watcher;
- `client`: the closed loop through the service (the simulated shop's visitors react to what it shows);
- `stage`: loading what `make repro` built, and `make serve`;
- `static/`: the shop page (HTML, JavaScript, CSS; nothing fetched from outside).
"""
