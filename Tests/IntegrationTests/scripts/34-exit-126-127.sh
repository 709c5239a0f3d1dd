# 126 (not executable) and 127 (not found); the script exits 127.
printf '#!/bin/sh\necho hi\n' > noexec.sh
chmod 644 noexec.sh
./noexec.sh; echo "non-executable -> $?"
chmod 755 noexec.sh
./noexec.sh; echo "executable -> $?"
nosuchcommand-xyz; echo "missing command -> $?"
./missing-file; echo "missing path -> $?"
mkdir adir
./adir; echo "directory -> $?"
nosuchcommand-xyz
