# git: commits on two branches, a merge, gc, and a clone (fixed dates and
# identities make every hash deterministic).
set -eu
export GIT_AUTHOR_NAME=Moat GIT_AUTHOR_EMAIL=moat@example.invalid GIT_COMMITTER_NAME=Moat GIT_COMMITTER_EMAIL=moat@example.invalid
export GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'
mkdir -p /tmp/g && cd /tmp/g
git init -q -b main repo && cd repo
for i in $(seq 1 20); do seq 1 $((i * 50)) > "file$i.txt"; git add "file$i.txt"; git commit -q -m "add file $i"; done
git checkout -q -b feature
for i in 1 2 3; do echo "feature $i" >> file1.txt; git commit -q -am "feature change $i"; done
git checkout -q main
echo "main change" >> file20.txt; git commit -q -am "main change"
git merge -q --no-edit feature
git log --oneline --graph | head -8
git rev-parse HEAD
git gc -q --aggressive
git count-objects -v | grep -E '^(count|in-pack|packs)'
git fsck --strict 2>&1 | wc -l
cd /tmp/g && git clone -q repo clone && cd clone
git rev-parse HEAD
git log --format='%h %s' | wc -l
git diff --stat HEAD~4 HEAD | tail -1
