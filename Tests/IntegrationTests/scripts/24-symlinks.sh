# Symbolic links: creation, readlink, resolution, dangling links.
mkdir -p real/dir
echo target > real/dir/file
ln -s real/dir/file rel
ln -s /work/real/dir abs
ln -s missing dangling
ln -s rel chain
for l in rel abs dangling chain; do readlink $l; done
readlink -f chain
cat chain
cat abs/file
test -L dangling && echo "dangling is a link"
test -e dangling || echo "dangling target missing"
ls -l rel abs dangling chain | awk '{print $1, $(NF-2), $NF}'
ln -sf real/dir newtarget && readlink newtarget
ln -sfn real newtarget && readlink newtarget
cd abs && pwd && pwd -P
