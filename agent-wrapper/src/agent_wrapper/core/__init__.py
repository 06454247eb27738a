"""Core plumbing shared by the API and the executors: settings and errors."""
