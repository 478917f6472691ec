"""Stream sources: entries of a stream (Redis Streams) read window by window by entry ID."""
