"""Stand-ins for the outside services (Meta's Graph API, Groq, a chat's incoming webhook).

Small HTTP servers that speak the real wire formats, so the service's real clients (requests,
the groq SDK) run against them: `server` is their common machinery and control API, `client`
drives a running one, and `graph`, `groq` and `chat_webhook` are the services. Tests run them
in a thread; benchmarks and `make try` run them as processes (`python -m devtools.standins.graph`).
"""
