"""The HTTP gateway: app factory, routers, schemas, and the one place errors become HTTP."""
