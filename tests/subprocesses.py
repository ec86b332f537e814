"""Starting and stopping groups of worker processes for the multi-process tests.

Each process starts in its own session, so stopping it kills everything it
started too (TensorFlow and JAX spawn helpers); every process is stopped,
whatever happens, so a failed test leaves nothing running.
"""

import os
import signal
import socket
import subprocess


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(command, env):
    """Starts `command` in a new session, its output (both streams) piped as text."""
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop(processes):
    """Kills each process still running, with its whole group, and reaps it."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def outputs(processes, timeout):
    """Waits for every process (up to `timeout` s each); their outputs. Always stops them."""
    try:
        return [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        stop(processes)
