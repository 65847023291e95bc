"""What several test modules share: helpers live here once, so no test imports another
(tests/test_layout.py checks it). Fixtures stay in the conftest.py files and take their helpers
from here.

- paths: the repository's root
- waiting: `until`, a check polled until it holds
- configs: the small test locker's config, written to a folder, and edits of it
- doubles: a stand-in lock driver for the domain's tests
- central: a locker with a [central] table driven through the domain (feed, signed commands)
- rig: the daemon on the simulated boards over a real pty, with its HTTP app (`make_rig`)
- sync: that rig syncing with the reference central over HTTP; nothing lost, nothing twice
- processes: the files of a locker run as a child process (simulator/processes.py runs it)
- updates, update_site: remote updates, in this process and as on a Pi with a supervisor
- pty_line, fake_boards, golden_frames: the serial line, boards on a pty, frames byte for byte
- screens: pages in a real browser, screenshots, axe-core, what does not fit
- codes, catalogues, refusals: pickup codes, the screens' catalogues, the CLI's refusals
"""
