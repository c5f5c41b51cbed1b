"""`imagegraph build`: Docker's classic builder, where a Dockerfile is a chain of commits (moby builder/dockerfile).

Parsing follows buildkit's frontend (the one moby's classic builder links): `parser` (the
syntax tree: directives, continuations, heredocs), `shell_lex` (variable expansion),
`instructions` (typed instructions and stages), `dockerignore` (Docker's pattern rules).
"""
