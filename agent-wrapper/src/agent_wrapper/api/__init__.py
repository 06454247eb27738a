"""HTTP API of the wrapper: schemas, routes, error envelope, body-size limit."""
