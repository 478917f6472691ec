"""The rest source kind."""
