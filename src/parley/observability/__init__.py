"""Operations: Prometheus metrics (``metrics``), structured logs with request and turn ids (``logs``),
and OpenTelemetry traces (``tracing``); ``turns`` is what the turn executor sees of metrics and traces."""
