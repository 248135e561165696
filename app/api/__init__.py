"""The HTTP layer: create_app(), routes and schemas."""
