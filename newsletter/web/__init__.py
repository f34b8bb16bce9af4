"""Web pages: thin views over the services."""
