"""Mutation testing of keyturn's pure core (`make mutation`): see mutation/__main__.py."""
