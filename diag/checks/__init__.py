"""The checks. Each module exposes ``run(target, options, progress) -> CheckResult``."""
