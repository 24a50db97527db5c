#!/usr/bin/env python3
# One GraceStart through a bare pty (bench/cld.mjs, section 2b): no relay and
# no driver, this script reads the pty's master itself and keeps nothing, so
# the harness's own cost is as low as a pty allows and the daemons' costs
# show. Also the daemon's user and system CPU during the GraceStart, from
# /proc/PID/stat (every thread).
#   bare-pty.py PIPEFS STORE PAD_V1_TO CMD_JSON ENV_JSON
# starts CMD -F -p PIPEFS -s STORE with PIPEFS/nfsd/cld a raw pty slave, sends
# GetVersion (v1, padded with zeros to PAD_V1_TO bytes if not 0), then a v2
# GraceStart, counts its -EINPROGRESS downcalls, and prints one JSON line.
import json, os, struct, subprocess, sys, time, tty

pipefs, store, pad, cmd, env = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
master, slave = os.openpty()
tty.setraw(slave)
os.makedirs(os.path.join(pipefs, 'nfsd'), exist_ok=True)
link = os.path.join(pipefs, 'nfsd', 'cld')
os.symlink(os.ttyname(slave), link)
p = subprocess.Popen(cmd + ['-F', '-p', pipefs, '-s', store], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
result = {}
try:
    # Wait until the daemon (the same pid after its wrapper's execs) has the pty open.
    name = os.ttyname(slave)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if any(os.readlink('/proc/%d/fd/%s' % (p.pid, f)) == name for f in os.listdir('/proc/%d/fd' % p.pid)):
                break
        except OSError:
            pass
        time.sleep(0.01)
    else:
        raise SystemExit('the daemon never opened the pty')
    buf = bytearray()

    def reply():
        """The next downcall: (status, xid)."""
        global buf
        while len(buf) < 8:
            buf += os.read(master, 65536)
        size = 1034 if buf[0] == 1 else 1067
        while len(buf) < size:
            buf += os.read(master, 65536)
        _, _, status, xid = struct.unpack_from('<BBhI', buf)
        del buf[:size]
        return status, xid

    def cpu():
        f = open('/proc/%d/stat' % p.pid).read().rsplit(') ', 1)[1].split()
        tick = os.sysconf('SC_CLK_TCK')
        return int(f[11]) * 1000 / tick, int(f[12]) * 1000 / tick

    v1 = struct.pack('<BBhI', 1, 5, 0, 1) + bytes(1034 - 8)
    os.write(master, v1.ljust(pad, b'\0') if pad else v1)
    if reply() != (0, 1):
        raise SystemExit('GetVersion failed')
    time.sleep(0.5)
    u0, s0 = cpu()
    t0 = time.monotonic()
    os.write(master, struct.pack('<BBhI', 2, 4, 0, 2) + bytes(1067 - 8))
    n = 0
    while True:
        status, xid = reply()
        if status == -115:
            n += 1
            continue
        break
    ms = (time.monotonic() - t0) * 1000
    u1, s1 = cpu()
    result = {'ms': ms, 'user': u1 - u0, 'sys': s1 - s0, 'n': n, 'status': status}
finally:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    os.unlink(link)
print(json.dumps(result))
