"""Model runtimes, one module per framework behind one small protocol; heavy imports stay inside each module."""
