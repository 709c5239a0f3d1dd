# cd/pwd through symlinks, logical vs physical paths.
mkdir -p real/child
ln -s real link
cd link
pwd
pwd -P
cd child && pwd && pwd -P
cd ..
pwd
cd ..
pwd
cd -P link && pwd
cd /work
cd ~ && pwd
cd - >/dev/null && pwd
cd /nonexistent 2>/dev/null || echo "cd failed"
pwd
cd / && pwd && cd work && pwd
cd ..; cd ..; pwd
