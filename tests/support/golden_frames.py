"""Golden lock-board frames, byte for byte, with where each comes from.

Plain data, no imports from the project, so that both our codec (tests/hardware/test_codecs.py)
and the simulator's own parser can be tested against the same bytes. Each entry:

- protocol: "kerong" (K), "winnsen" (W) or "generic" (G)
- description: what the frame does
- board, channel: the address and the 1-based channel it concerns (channel None for a whole board)
- request: hex of what the host writes, or None if the entry is a board's frame only
- reply: hex of what the board answers, or None when the board answers nothing (K's unlock) or no
  source shows the reply
- expect: what a reader of the reply must conclude: {"ack": "ok" | "refused"} for an unlock reply,
  {"closed": {channel: bool}} for a status reply read with `polarity`, and for K's status reply
  {"items": {channel: bool}} too: what the infrared item bits (D3, D4) say is inside
- polarity: the BoardConfig.door_closed_when the "closed" expectation assumes
- source: the repository and path (or document) the bytes come from; "constructed" means the layout
  is from that source but these exact bytes were computed, not captured
"""

from __future__ import annotations

from typing import Any

GOLDEN_FRAMES: list[dict[str, Any]] = [
    # ---- protocol K: Kerong KR-CU16 ---------------------------------------------------------
    {
        "protocol": "kerong",
        "description": "unlock board 0 lock 1 (ADDR 0x00); the board sends no reply",
        "board": 0, "channel": 1,
        "request": "02 00 31 03 36", "reply": None, "expect": {},
        "polarity": "bit_set",
        "source": "julio-alv/lkaas-kerong src/kerong/command.rs (sum = ADDR + 0x36);"
                  " suryavirkapur/kerong-lib src/kerong_client.cpp unlock(); lockboard-protocol.md",
    },
    {
        "protocol": "kerong",
        "description": "unlock board 1 lock 6 (ADDR 0x15)",
        "board": 1, "channel": 6,
        "request": "02 15 31 03 4B", "reply": None, "expect": {},
        "polarity": "bit_set",
        "source": "suryavirkapur/kerong-lib src/kerong_client.cpp make_unlock_addr;"
                  " lockboard-protocol.md",
    },
    {
        "protocol": "kerong",
        "description": "status of board 0, every latch bit set (all closed with bit_set)",
        "board": 0, "channel": None,
        "request": "02 00 30 03 35", "reply": "02 00 35 FF FF 00 00 03 38",
        "expect": {"closed": {ch: True for ch in range(1, 17)},
                   "items": {ch: False for ch in range(1, 17)}},
        "polarity": "bit_set",
        "source": "request: lockboard-protocol.md, suryavirkapur/kerong-lib get_state();"
                  " reply constructed from kerong-lib get_state() (STX, ADDR, 0x35, D1-D4, ETX,"
                  " sum) and julio-alv/lkaas-kerong src/kerong/status.rs (bytes 3-4 latches)",
    },
    {
        "protocol": "kerong",
        "description": "status of board 1, lock 1 open, locks 2-16 closed",
        "board": 1, "channel": None,
        "request": "02 10 30 03 45", "reply": "02 10 35 FE FF 00 00 03 47",
        "expect": {"closed": {1: False, **{ch: True for ch in range(2, 17)}}},
        "polarity": "bit_set",
        "source": "constructed from suryavirkapur/kerong-lib src/kerong_client.cpp get_state()",
    },
    {
        "protocol": "kerong",
        "description": "status of board 2 read with kerong-lib's polarity (bit 0 = unlocked):"
                       " every latch bit clear = every lock closed; infrared bit 1 set",
        "board": 2, "channel": None,
        "request": "02 20 30 03 55", "reply": "02 20 35 00 00 01 00 03 5B",
        "expect": {"closed": {ch: True for ch in range(1, 17)},
                   "items": {1: True, **{ch: False for ch in range(2, 17)}}},
        "polarity": "bit_clear",
        "source": "constructed; polarity of suryavirkapur/kerong-lib BoardState::is_locked",
    },
    {
        "protocol": "kerong",
        "description": "status of board 3: every lock closed; items in locks 2 and 9 (D3 = 02,"
                       " D4 = 01), the others empty",
        "board": 3, "channel": None,
        "request": "02 30 30 03 65", "reply": "02 30 35 FF FF 02 01 03 6B",
        "expect": {"closed": {ch: True for ch in range(1, 17)},
                   "items": {ch: ch in (2, 9) for ch in range(1, 17)}},
        "polarity": "bit_set",
        "source": "constructed from suryavirkapur/kerong-lib get_state() (ir_1_8 = byte 5,"
                  " ir_9_16 = byte 6) and julio-alv/lkaas-kerong INFRARED_INDEX = 5",
    },
    {
        "protocol": "kerong",
        "description": "query all boards (lkaas-kerong's poll; not sent by our driver)",
        "board": 0, "channel": None,
        "request": "02 00 32 03 37", "reply": None, "expect": {},
        "polarity": "bit_set",
        "source": "julio-alv/lkaas-kerong src/kerong/command.rs query_all (fixed sum 0x37)",
    },
    {
        "protocol": "kerong",
        "description": "set unlock pulse time of board 0 to 500 ms (50 units of 10 ms, high byte"
                       " first); reply undocumented",
        "board": 0, "channel": None,
        "request": "02 00 37 00 32 03 6E", "reply": None, "expect": {},
        "polarity": "bit_set",
        "source": "one source only: a public TypeScript 'Kerong Lock Controller Module' (CU12/CU16)"
                  " found by code search, setUnlockTime(); repository not identified",
    },
    # ---- protocol G: generic RS485 lock board (XOR) -----------------------------------------
    {
        "protocol": "generic",
        "description": "unlock board 1 channel 1; board answers status 0x11",
        "board": 1, "channel": 1,
        "request": "8A 01 01 11 9B", "reply": "8A 01 01 11 9B", "expect": {"ack": "ok"},
        "polarity": "bit_set",
        "source": "lockboard-protocol.md; Open-Locker/Open-Locker"
                  " locker-client/src/adapters/rs485/rs485-lock-board-codec.ts encodeUnlockRequest"
                  " / decodeUnlockAck",
    },
    {
        "protocol": "generic",
        "description": "unlock board 1 channel 1; board answers status 0x00 (still an"
                       " acknowledgement: the byte is lock feedback)",
        "board": 1, "channel": 1,
        "request": "8A 01 01 11 9B", "reply": "8A 01 01 00 8A", "expect": {"ack": "ok"},
        "polarity": "bit_set",
        "source": "constructed; Open-Locker/Open-Locker rs485-lock-board-codec.ts decodeUnlockAck"
                  " accepts 0x00 and 0x11",
    },
    {
        "protocol": "generic",
        "description": "unlock board 2 channel 24",
        "board": 2, "channel": 24,
        "request": "8A 02 18 11 81", "reply": "8A 02 18 11 81", "expect": {"ack": "ok"},
        "polarity": "bit_set",
        "source": "constructed from Open-Locker/Open-Locker rs485-lock-board-codec.ts",
    },
    {
        "protocol": "generic",
        "description": "query all channels of board 1; verified reply of an 8-channel board"
                       " (3 status bytes, all 0)",
        "board": 1, "channel": None,
        "request": "80 01 00 33 B2", "reply": "80 01 00 00 00 33 B2",
        "expect": {"closed": {ch: False for ch in range(1, 9)}},
        "polarity": "bit_set",
        "source": "Open-Locker/Open-Locker rs485-lock-board-codec.ts"
                  " VERIFIED_8_CHANNEL_QUERY_ALL_RESPONSE; lockboard-protocol.md",
    },
    {
        "protocol": "generic",
        "description": "query board 1 (24 channels): channel 1 bit set, others clear",
        "board": 1, "channel": None,
        "request": "80 01 00 33 B2", "reply": "80 01 00 00 01 33 B3",
        "expect": {"closed": {1: True, **{ch: False for ch in range(2, 25)}}},
        "polarity": "bit_set",
        "source": "constructed from Open-Locker/Open-Locker rs485-lock-board-codec.ts"
                  " decodeQueryAllResponse (status bytes highest channel group first)",
    },
    {
        "protocol": "generic",
        "description": "query board 3 (24 channels): channels 1 and 24 bit set, read bit_clear",
        "board": 3, "channel": None,
        "request": "80 03 00 33 B0", "reply": "80 03 80 00 01 33 31",
        "expect": {"closed": {1: False, 24: False,
                              **{ch: True for ch in range(2, 24)}}},
        "polarity": "bit_clear",
        "source": "constructed from Open-Locker/Open-Locker rs485-lock-board-codec.ts",
    },
    {
        "protocol": "generic",
        "description": "query board 1 (50 channels, 7 status bytes): channels 1 and 50 bit set",
        "board": 1, "channel": None,
        "request": "80 01 00 33 B2", "reply": "80 01 02 00 00 00 00 00 01 33 B1",
        "expect": {"closed": {1: True, 50: True,
                              **{ch: False for ch in range(2, 50)}}},
        "polarity": "bit_set",
        "source": "constructed from Open-Locker/Open-Locker rs485-lock-board-codec.ts"
                  " (queryAllResponseLength = ceil(channels / 8) + 4)",
    },
    # ---- protocol W: Winnsen (no checksum) ---------------------------------------------------
    {
        "protocol": "winnsen",
        "description": "unlock lock 5 on station 1; board answers OK (0x01)",
        "board": 1, "channel": 5,
        "request": "90 06 05 01 05 03", "reply": "90 07 85 01 05 01 03", "expect": {"ack": "ok"},
        "polarity": "bit_set",
        "source": "lockboard-protocol.md (com.blitztech.pudokiosk"
                  " deviceio/rs485/WinnsenProtocol.kt)",
    },
    {
        "protocol": "winnsen",
        "description": "unlock lock 5 on station 1; board refuses (0x02 cooldown)",
        "board": 1, "channel": 5,
        "request": "90 06 05 01 05 03", "reply": "90 07 85 01 05 02 03",
        "expect": {"ack": "refused"},
        "polarity": "bit_set",
        "source": "constructed from lockboard-protocol.md",
    },
    {
        "protocol": "winnsen",
        "description": "unlock lock 16 on station 3; board answers failed (0x00)",
        "board": 3, "channel": 16,
        "request": "90 06 05 03 10 03", "reply": "90 07 85 03 10 00 03",
        "expect": {"ack": "refused"},
        "polarity": "bit_set",
        "source": "constructed from lockboard-protocol.md",
    },
    {
        "protocol": "winnsen",
        "description": "status of lock 5 on station 1: 0x00 closed (STATUS before LOCK)",
        "board": 1, "channel": 5,
        "request": "90 06 12 01 05 03", "reply": "90 07 92 01 00 05 03",
        "expect": {"closed": {5: True}},
        "polarity": "bit_set",
        "source": "constructed from lockboard-protocol.md (status reply layout)",
    },
    {
        "protocol": "winnsen",
        "description": "status of lock 2 on station 1: 0x01 open",
        "board": 1, "channel": 2,
        "request": "90 06 12 01 02 03", "reply": "90 07 92 01 01 02 03",
        "expect": {"closed": {2: False}},
        "polarity": "bit_set",
        "source": "constructed from lockboard-protocol.md",
    },
]
