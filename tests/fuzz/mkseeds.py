#!/usr/bin/env python3
"""Write the hand-made seed corpora in tests/fuzz/corpus/<target>/.

The record formats are described at the top of each fuzz_*.c file. Run from
anywhere: python3 tests/fuzz/mkseeds.py (the files are committed; rerun only
after changing a format)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- fuzz_virtq ----
GPA_BIAS = 4096  # fz_gpa: gpa = GPA - 4096 + a


def vq_desc(i, off, length, flags, nxt):
    # op 0: idx u16, addr u32, lensel u8 (even: u16 len), len u16, flags u8, next u16
    return bytes([0]) + struct.pack('<HIBHBH', i, off + GPA_BIAS, 0, length, flags, nxt)


def vq_ram(off, data):
    return bytes([4]) + struct.pack('<IB', off, len(data)) + data


GPA = 0x100000
chain = (vq_desc(0, 0x8000, 51, 1, 1) + vq_desc(1, 0x9000, 108, 2, 0) +
         bytes([1]) + struct.pack('<H', 0) + bytes([2]) + bytes([3, 0]) + struct.pack('<I', 108) +
         bytes([6]))
out('fuzz_virtq', 'simple', bytes([0x1c, 64]) + chain)
table = (struct.pack('<QIHH', GPA + 0x8000, 51, 1, 1) + struct.pack('<QIHH', GPA + 0x9000, 4096, 2, 0))
ind = (vq_ram(0xa000, table) + vq_desc(2, 0xa000, 32, 4, 0) + bytes([1]) + struct.pack('<H', 2) +
       bytes([2, 7, 1, 2, 3, 0]) + struct.pack('<I', 0) + bytes([6]))
out('fuzz_virtq', 'indirect', bytes([0x1c, 8]) + ind)
# several in flight, completed out of order, ring wraps (num 4)
many = b''
for i in range(4):
    many += vq_desc(i, 0x8000 + i * 0x100, 64, 2, 0)
for rnd in range(3):
    for i in range(4):
        many += bytes([1]) + struct.pack('<H', i) + bytes([2])
    for i in (3, 0, 1, 0):
        many += bytes([3, i]) + struct.pack('<I', 64)
    many += bytes([6])
out('fuzz_virtq', 'wrap', bytes([0x0a | 0x30, 16]) + many)

# inflight tracking (0x40): pop three, complete one, the backend dies and a new one
# resubmits the other two, then new work
track = b''
for i in range(4):
    track += vq_desc(i, 0x8000 + i * 0x100, 64, 2, 0)
for i in (2, 0, 3):
    track += bytes([1]) + struct.pack('<H', i) + bytes([2])
track += bytes([3, 1]) + struct.pack('<I', 64) + bytes([9]) + bytes([2, 2])
track += bytes([1]) + struct.pack('<H', 1) + bytes([2]) + bytes([3, 0]) + struct.pack('<I', 64)
track += bytes([10]) + struct.pack('<IB', 16, 4) + bytes([1, 0, 0, 0]) + bytes([9, 2, 2, 2])
out('fuzz_virtq', 'inflight_restart', bytes([0x0c | 0x40, 16]) + track)

# ---- fuzz_scsi ----


def scsi_cmd(cdb, direction=0, length=0, lun=0, data=b'', pieces=1, target=0, pair=0):
    # pair 1: lun 0/1 are LUNs 2/3 (CD-ROM, empty CD-ROM); pair 2: LUNs 4/5
    # (removable disks, with and without a medium)
    sel = (lun & 3) | (0 << 2) | (direction << 5) | (target << 7)
    if length > 0xffff or length > 4096:
        ln = bytes([0x80]) + struct.pack('<I', length)
    else:
        ln = bytes([0]) + struct.pack('<H', length)
    cdb = bytes(cdb) + bytes(32 - len(cdb))
    return bytes([pair << 6, sel]) + ln + bytes([pieces - 1]) + cdb + data[:min(length, 512)]


def tray(lu, action, force=False, size=0):
    # lu 0..3 = LUNs 2..5; action 0 open, 1 close, 2 remove, 3 insert (size in 2 KiB), 4 check
    sel = (lu & 3) | (action << 2) | (0x80 if force else 0)
    return bytes([5, sel]) + (bytes([size]) if action == 3 else b'')


RUN = bytes([2, 3, 2, 3, 2, 3])
inq = scsi_cmd([0x12, 0, 0, 0, 36, 0], 2, 36) + RUN
inq += scsi_cmd([0x12, 1, 0x83, 0, 255, 0], 2, 255) + RUN
inq += scsi_cmd([0x12, 1, 0xb0, 0, 64, 0], 2, 64, lun=1) + RUN
inq += scsi_cmd([0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 2, 4096) + RUN
out('fuzz_scsi', 'inquiry', inq)
rc = scsi_cmd([0x9e, 0x10] + [0] * 8 + [0, 0, 0, 32, 0, 0], 2, 32) + RUN
rc += scsi_cmd([0x25] + [0] * 9, 2, 8, lun=1) + RUN
rc += scsi_cmd([0x1a, 0, 0x3f, 0, 255, 0], 2, 255) + RUN
rc += scsi_cmd([0x5a, 0, 0x08, 0, 0, 0, 0, 1, 0, 0], 2, 256) + RUN
rc += scsi_cmd([0xa3, 0x0c, 0x02, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 2, 4096) + RUN
out('fuzz_scsi', 'capacity_modes', rc)
pat = bytes(range(256)) * 2
rw = scsi_cmd([0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0], 1, 512, data=pat, pieces=2)
rw += scsi_cmd([0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0], 2, 512, pieces=3)
rw += RUN + scsi_cmd([0x8a, 0x08] + [0] * 7 + [16, 0, 0, 0, 1, 0, 0], 1, 4096, lun=1, data=pat)
rw += scsi_cmd([0x88, 0] + [0] * 7 + [16, 0, 0, 0, 1, 0, 0], 2, 4096, lun=1) + RUN
rw += scsi_cmd([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + RUN
rw += scsi_cmd([0x2f, 0, 0, 0, 0, 0, 0, 0, 8, 0]) + RUN
out('fuzz_scsi', 'read_write', rw)
unmap_list = struct.pack('>HH4x', 22, 16) + struct.pack('>QI4x', 4, 8)
ws = scsi_cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], 1, 24, data=unmap_list) + RUN
ws += scsi_cmd([0x93, 0x08] + [0] * 7 + [2] + [0, 0, 0, 4, 0, 0], 1, 512, data=pat) + RUN
ws += scsi_cmd([0x41, 0, 0, 0, 0, 0, 0, 0, 4, 0], 1, 512, data=pat) + RUN
ws += scsi_cmd([0x89, 0] + [0] * 7 + [3, 0, 0, 0, 0, 1, 0], 1, 1024, data=pat) + RUN
out('fuzz_scsi', 'unmap_writesame', ws)
tmf = scsi_cmd([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], 2, 4096)
tmf += scsi_cmd([0x2a, 0, 0, 0, 0, 8, 0, 0, 8, 0], 1, 4096, data=pat)
tmf += bytes([3, 0, 1]) + bytes([3, 5 | (0 << 3), 0]) + bytes([4, 0x05]) + RUN + RUN
out('fuzz_scsi', 'tmf_errors', tmf)
cd = scsi_cmd([0x12, 0, 0, 0, 96, 0], 2, 96, pair=1) + scsi_cmd([0x25] + [0] * 9, 2, 8, pair=1) + RUN
cd += scsi_cmd([0x43, 0x02, 0, 0, 0, 0, 0, 0, 64, 0], 2, 64, pair=1)
cd += scsi_cmd([0x43, 0x02, 2, 0, 0, 0, 1, 0, 64, 0], 2, 64, pair=1) + RUN
cd += scsi_cmd([0x46, 0, 0, 0, 0, 0, 0, 1, 0, 0], 2, 256, pair=1)
cd += scsi_cmd([0x4a, 1, 0, 0, 0x16, 0, 0, 0, 8, 0], 2, 8, pair=1) + RUN
cd += scsi_cmd([0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], 2, 34, pair=1)
cd += scsi_cmd([0x52, 1, 0, 0, 0, 1, 0, 0, 48, 0], 2, 48, pair=1) + RUN
cd += scsi_cmd([0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0], 2, 255, pair=1)
cd += scsi_cmd([0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0], 2, 4096, pair=1) + RUN
cd += scsi_cmd([0xad, 0, 0, 0, 0, 0, 0, 0xff, 0, 64, 0, 0], 2, 64, pair=1)
cd += scsi_cmd([0xac, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], 2, 24, pair=1)
cd += scsi_cmd([0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 2, 8, lun=1, pair=1) + RUN
out('fuzz_scsi', 'mmc', cd)
tr = scsi_cmd([0x1e, 0, 0, 0, 1, 0], pair=1) + tray(0, 0) + scsi_cmd([0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 2, 8, pair=1)
tr += scsi_cmd([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 2, 2048, pair=1) + tray(0, 0, force=True) + tray(0, 2)
tr += tray(0, 3, size=4) + tray(0, 1) + RUN + tray(0, 4) + scsi_cmd([0, 0, 0, 0, 0, 0], pair=1)
tr += scsi_cmd([0x1b, 0, 0, 0, 2, 0], pair=1) + scsi_cmd([0x1b, 0, 0, 0, 3, 0], pair=1)
tr += scsi_cmd([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], 1, 512, data=pat, pair=2) + tray(2, 0, force=True)
tr += tray(2, 2) + RUN + tray(3, 0) + tray(3, 3, size=8) + tray(3, 1)
tr += scsi_cmd([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 2, 4096, lun=1, pair=2) + RUN
out('fuzz_scsi', 'tray', tr)
# LUN 1's error policy and held commands ride on a progress byte (bits 4-2)
HOLD, RETRY, RESET = bytes([2, 3 << 2]), bytes([2, 4 << 2]), bytes([2, 5 << 2])
EIO_LUN1 = bytes([4, 0x21])       # LUN 1: the next request of any op fails with EIO
held = HOLD + EIO_LUN1 + scsi_cmd([0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0], 1, 4096, lun=1, data=pat)
held += RUN + RETRY + RUN
held += EIO_LUN1 + scsi_cmd([0x88, 0] + [0] * 7 + [2, 0, 0, 0, 1, 0, 0], 2, 4096, lun=1) + RUN + RESET
held += EIO_LUN1 + scsi_cmd([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], lun=1) + RUN
held += bytes([3, 5 | (1 << 3), 0]) + RUN
out('fuzz_scsi', 'held', held)

# ---- fuzz_qmp ----


def qmp(text, mode=0, split=0xffff):
    return bytes([mode]) + struct.pack('<H', split) + text.encode()


out('fuzz_qmp', 'caps_query', qmp('{"execute":"qmp_capabilities"}\r\n{"execute":"query-block","id":1}'
                                  '{"execute":"query-status"}{"execute":"query-commands"}', split=20))
out('fuzz_qmp', 'blockdev', qmp('{"execute":"blockdev-add","arguments":{"driver":"raw","node-name":"n1",'
                                '"file":{"driver":"file","filename":"/nonexistent/x.img","aio":"io_uring"},'
                                '"cache":{"direct":true,"no-flush":false},"discard":"unmap"}}'
                                '{"execute":"block_resize","arguments":{"node-name":"drive0","size":1048576}}'
                                '{"execute":"device_add","arguments":{"driver":"scsi-hd","id":"d9",'
                                '"drive":"drive2","scsi-id":1,"lun":2}}'
                                '{"execute":"device_del","arguments":{"id":"disk0"}}'
                                '{"execute":"blockdev-del","arguments":{"node-name":"drive3"}}', mode=1))
out('fuzz_qmp', 'json_edge', qmp("{'execute': 'query-version', 'id': [1, 2.5e3, -0, true, null, "
                                 "\"\\u00e9\\ud83d\\ude00\\n\"]}\x1b{\"a\":{\"b\":[[[]]]}}", mode=3, split=7))
out('fuzz_qmp', 'errors', qmp('{"execute":"nope"}{"execute":"query-block","arguments":{"x":1}}'
                              '{"exec":1}[1,2]"str"{"execute":"quit"}', mode=1))
out('fuzz_qmp', 'media', qmp('{"execute":"blockdev-open-tray","arguments":{"id":"cd1","force":true}}'
                             '{"execute":"blockdev-remove-medium","arguments":{"id":"cd1"}}'
                             '{"execute":"blockdev-insert-medium","arguments":{"id":"cd1","node-name":"drive5"}}'
                             '{"execute":"blockdev-close-tray","arguments":{"device":"drive1"}}'
                             '{"execute":"blockdev-change-medium","arguments":{"id":"cd1","filename":"/x.iso",'
                             '"format":"raw","read-only-mode":"read-write","force":false}}'
                             '{"execute":"eject","arguments":{"device":"drive1","force":true}}', mode=1))

# ---- fuzz_vhost_msg ----
UVA = 0x7f0000000000
RAMSZ = 256 << 10
FD_A, FD_B, FD_EV, FD_NULL = 0, 1, 2, 3


def msg(req, payload=b'', fds=(), need_reply=False):
    fs = len(fds)
    for i, k in enumerate(fds):
        fs |= k << (3 + (i % 2) * 2)
    return bytes([0, req, 1 if need_reply else 0, fs]) + struct.pack('<H', len(payload)) + payload


def u64(v):
    return struct.pack('<Q', v)


def state(i, n):
    return struct.pack('<II', i, n)


def ram(which, off, data):
    return bytes([5, which]) + struct.pack('<IB', off, len(data)) + data


PF = 1 | 8 | (1 << 13) | (1 << 15)
PF_INFLIGHT = PF | (1 << 12)
FEAT = (1 << 32) | (1 << 30) | (1 << 28) | (1 << 29) | 1 | 4


def init(pf=PF):
    s = msg(1) + msg(15) + msg(16, u64(pf)) + msg(17) + msg(36) + msg(3)
    return s + msg(2, u64(FEAT), need_reply=True)


def memtable(regions):
    p = struct.pack('<II', len(regions), 0)
    for gpa, size, uva, off in regions:
        p += struct.pack('<QQQQ', gpa, size, uva, off)
    return msg(5, p, fds=[FD_A] * len(regions), need_reply=True)


def ring(q, base, num=16):
    desc, avail, used = base, base + 0x1000, base + 0x2000
    s = msg(8, state(q, num)) + msg(10, state(q, 0))
    s += msg(9, struct.pack('<IIQQQQ', q, 0, UVA + desc, UVA + used, UVA + avail, 0))
    s += msg(12, u64(q), fds=[FD_EV]) + msg(13, u64(q), fds=[FD_EV]) + msg(18, state(q, 1))
    return s


def chain(base, head, data_off):
    d = struct.pack('<QIHH', data_off, 51, 1, head + 1) + struct.pack('<QIHH', data_off + 0x100, 108, 2, 0)
    return ram(0, base + head * 16, d) + ram(0, base + 0x1000, struct.pack('<HHH', 0, 1, head))


s = init() + memtable([(0, RAMSZ, UVA, 0)]) + ring(2, 0)
s += chain(0, 0, 0x8000) + bytes([6, 0])
s += bytes([7, 2]) + msg(11, state(2, 0))
out('fuzz_vhost_msg', 'qemu_start', s)
s = init() + memtable([(0, RAMSZ, UVA, 0)]) + ring(2, 0) + ring(3, 0x4000)
s += chain(0, 0, 0x8000) + bytes([6, 0]) + msg(11, state(2, 0)) + bytes([7, 2])
s += msg(34, need_reply=True) + bytes([7, 3])
out('fuzz_vhost_msg', 'deferred_reset', s)
reg = struct.pack('<QQQQQ', 0, 0, RAMSZ // 2, UVA, 0)
reg2 = struct.pack('<QQQQQ', 0, 1 << 32, RAMSZ // 2, UVA + (1 << 32), RAMSZ // 2)
s = init() + msg(37, reg, fds=[FD_A], need_reply=True) + msg(37, reg2, fds=[FD_B], need_reply=True)
s += ring(2, 0) + chain(0, 0, 0x8000) + bytes([6, 0]) + msg(38, reg2, need_reply=True) + bytes([7, 2])
s += bytes([8, 0, 0]) + bytes([6, 0]) + bytes([9])
out('fuzz_vhost_msg', 'add_rem_shrink', s)
infl = struct.pack('<QQHH4x', 0, 0, 4, 16)
set_infl = struct.pack('<QQHH4x', 4 * 320, 0, 4, 16)
s = init(PF_INFLIGHT) + msg(31, infl) + msg(32, set_infl, fds=[FD_B], need_reply=True)
s += memtable([(0, RAMSZ, UVA, 0)]) + ring(2, 0) + chain(0, 0, 0x8000)
s += bytes([6, 0]) + bytes([9])
out('fuzz_vhost_msg', 'inflight', s)
