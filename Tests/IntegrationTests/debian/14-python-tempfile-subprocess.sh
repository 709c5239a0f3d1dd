# python3 tempfile in the cwd, subprocess with pipes (sort, shell, check, returncode), os.walk
python3 - <<'PY'
import os, subprocess, tempfile, shutil
with tempfile.TemporaryDirectory(dir=".") as d:
    p = os.path.join(d, "f.txt")
    with open(p, "w") as f:
        f.write("temp data\n")
    print("tempdir exists:", os.path.isdir(d), "under cwd:", os.path.dirname(os.path.abspath(d)) == os.getcwd())
    print("content:", open(p).read().strip())
print("tempdir removed:", not os.path.exists(d))
with tempfile.NamedTemporaryFile("w+", dir=".", suffix=".tmp", delete=True) as t:
    t.write("abc"); t.flush(); t.seek(0)
    print("named temp:", t.read(), os.path.exists(t.name))
fd, name = tempfile.mkstemp(dir=".", prefix="keep")
os.write(fd, b"mkstemp\n"); os.close(fd)
os.rename(name, "kept.txt")
print("mode", oct(os.stat("kept.txt").st_mode & 0o777))
r = subprocess.run(["sort"], input="pear\napple\nfig\n", capture_output=True, text=True)
print("sort:", r.stdout.split(), r.returncode)
r = subprocess.run(["sort", "-n", "-r"], input=b"3\n10\n2\n", stdout=subprocess.PIPE)
print("sort -nr:", r.stdout)
r = subprocess.run("echo out; echo err >&2; exit 3", shell=True, capture_output=True, text=True)
print("shell:", repr(r.stdout), repr(r.stderr), r.returncode)
try:
    subprocess.run(["false"], check=True)
except subprocess.CalledProcessError as e:
    print("check raised, status", e.returncode)
print("check_output:", subprocess.check_output(["printf", "%s-%s", "a", "b"]).decode())
p1 = subprocess.Popen(["seq", "1", "1000"], stdout=subprocess.PIPE)
p2 = subprocess.Popen(["wc", "-l"], stdin=p1.stdout, stdout=subprocess.PIPE)
p1.stdout.close()
out, _ = p2.communicate()
print("pipeline:", out.decode().strip(), p1.wait(), p2.returncode)
try:
    subprocess.run(["/nonexistent/cmd"])
except FileNotFoundError as e:
    print("missing:", e.errno, e.strerror)
os.makedirs("w/a/b", exist_ok=True)
open("w/a/x", "w").close(); open("w/a/b/y", "w").close()
for root, dirs, files in sorted(os.walk("w")):
    print(root, sorted(dirs), sorted(files))
shutil.copytree("w", "w2"); shutil.rmtree("w")
print(sorted(os.listdir(".")))
PY
