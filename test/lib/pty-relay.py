#!/usr/bin/env python3
# A pseudo-terminal standing in for rpc_pipefs' cld pipe (test/lib/cld-driver.ts):
#   pty-relay.py LINK
# makes LINK a symlink to a raw pty slave, then relays stdin -> master and
# master -> stdout until stdin closes. It keeps its own slave fd open so the
# master never sees a hangup when the daemon on the slave dies and restarts,
# and bytes written while no daemon is there wait in the tty. Prints "ready"
# on stderr once LINK exists.
import os
import select
import sys
import tty

link = sys.argv[1]
master, slave = os.openpty()
tty.setraw(slave)  # no echo, no line discipline, no output processing
os.set_blocking(master, False)
tmp = link + '.tmp'
if os.path.lexists(tmp):
    os.unlink(tmp)
os.symlink(os.ttyname(slave), tmp)
os.rename(tmp, link)
sys.stderr.write('ready\n')
sys.stderr.flush()

pending = bytearray()  # stdin bytes the tty has no room for yet
stdin_open = True
try:
    while stdin_open or pending:
        r, w, _ = select.select(([0] if stdin_open else []) + [master], [master] if pending else [], [])
        if 0 in r:
            data = os.read(0, 65536)
            if data:
                pending += data
            else:
                stdin_open = False
        if master in w:
            try:
                del pending[:os.write(master, pending)]
            except BlockingIOError:
                pass
        if master in r:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                data = b''
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
finally:
    try:
        os.unlink(link)
    except OSError:
        pass
