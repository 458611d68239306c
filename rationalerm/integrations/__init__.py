"""rationalerm inside other tools' own loops: ``inspect_ai`` (an Inspect AI scorer). Each module imports its
tool, an optional package (a missing one is one ``ConfigError`` naming the extra); nothing else in rationalerm
imports this package."""
