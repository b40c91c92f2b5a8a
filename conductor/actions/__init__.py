"""Actions: one step of a pass each, built on the edges' ports; they return facts."""
