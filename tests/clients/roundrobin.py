"""A tiny loopback TCP proxy that hands each new connection to the next of several ports, in turn.

Used to put two blobseal replicas behind one endpoint, the way a load balancer without stickiness
would: a client's pooled connections (and so its parallel requests) end up on both replicas.
"""

from __future__ import annotations

import asyncio
import threading

_CHUNK = 256 * 1024


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close `dst`; on a broken connection close `dst` outright."""
    try:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        dst.close()


class RoundRobinProxy:
    """Listens on 127.0.0.1:`port`; connection i goes to `targets[i % len(targets)]`.

    Runs its own asyncio loop on a daemon thread. `connections[j]` counts the connections given to
    `targets[j]`. Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, targets: list[int]):
        self.targets = list(targets)
        self.connections = [0] * len(self.targets)
        self.port: int | None = None
        self._turn = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="roundrobin", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()  # both ends of every live connection
        self._tasks: set[asyncio.Task] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RoundRobinProxy":
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection, end the thread (bounded: a few seconds at most)."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> "RoundRobinProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        which = self._turn % len(self.targets)
        self._turn += 1
        self.connections[which] += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.targets[which]), timeout=5)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            self._tasks.discard(asyncio.current_task())
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        finally:
            for w in (writer, up_writer):
                w.close()
                self._open.discard(w)
            self._tasks.discard(asyncio.current_task())

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends both pipes of each connection (their reads see EOF); cancelling the
        # handler tasks instead would make asyncio log every one of them as an error.
        for w in list(self._open):
            w.close()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=5)
            for task in late:
                task.cancel()
