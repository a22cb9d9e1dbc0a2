"""`python -m toolsft.cli`: the same CLI, for subprocesses that must use this interpreter."""

from toolsft.cli.main import cli

if __name__ == "__main__":
    cli()
