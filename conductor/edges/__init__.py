"""The edges: GitHub, git, agent processes and the HTTP cache. The only modules that talk to the world."""
