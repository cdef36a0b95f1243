"""What people send besides text, read before the bot answers: voice messages transcribed and
images described by Groq (`understanding`), fetched safely from Meta's CDN (`fetching`), kept for
staff and removed on time (`services`)."""
