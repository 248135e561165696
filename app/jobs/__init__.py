"""Background jobs: the runner of one job and the server's manager of them (their records: app.state)."""
