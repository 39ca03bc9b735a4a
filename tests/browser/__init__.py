"""Browser tests of the agent console (marker ``browser``)."""
