"""The durable outbox: result messages kept in SQLite until the broker acknowledges them."""
