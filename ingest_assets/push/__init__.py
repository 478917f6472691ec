"""Records pushed over HTTP: validated at the door, journaled, landed as partitioned files."""
