"""`python -m codelab_client` = the `codelab` command."""

from codelab_client.cli import app

if __name__ == "__main__":
    app()
