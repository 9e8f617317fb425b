"""ZRE mode: covey beside Zyre and pyre nodes (ZRE v2, RFC 36), one capability folder.

* :mod:`.beacon` — the 22-byte UDP beacon codec (the only maker of ZRE-magic datagrams);
* :mod:`.messages` — the zre_msg codec (HELLO, WHISPER, SHOUT, JOIN, LEAVE, PING, PING-OK);
* :mod:`.peers` — the peer table: decisions given ``now``, no IO;
* :mod:`.events` — what the agent's event stream shows of ZRE peers;
* :mod:`.transport` — UDP and ZeroMQ sockets (imports pyzmq; loaded only with ``--zre``);
* :mod:`.feature` — the runtime feature and ``agent.zre``.

Nothing here imports pyzmq at module level but :mod:`.transport`.
"""
