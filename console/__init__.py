"""The management console (issue 19, decision 0032): a web app for customers and staff.

Layers as in ari_app and rating: `console.core` is pure (password rules, sessions, CSRF,
throttling, call filters); `console.storage` holds its SQL; `console.app` the Starlette routes;
`console.commands` the `fairline console` and `fairline users` commands. Only the program's
composition root (ari_app/cli.py) imports this package.
"""
