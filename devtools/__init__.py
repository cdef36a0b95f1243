"""What the test suite, the benchmarks and `make run` share to run the service on one machine.

`processes` starts the Procfile's processes, a private Redis and scratch databases, and reads
their CPU and memory from /proc; `webhook` builds and signs Messenger deliveries as Meta does.
Nothing here is imported by the service itself.
"""
