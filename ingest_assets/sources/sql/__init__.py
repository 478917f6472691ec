"""The sql source kind."""
