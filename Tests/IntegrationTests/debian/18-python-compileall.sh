# python3 -m compileall -q on a package in the cwd, then import from the bytecode
mkdir -p pkg/sub
printf 'VALUE = 41\n' > pkg/__init__.py
printf 'def add(a, b):\n    return a + b\n' > pkg/mathy.py
printf '' > pkg/sub/__init__.py
printf 'from pkg.mathy import add\nRESULT = add(1, 2)\n' > pkg/sub/deep.py
printf 'def broken(:\n' > pkg/bad.py
python3 -m compileall -q pkg > compile.log 2>&1; echo "compileall status $?"
grep -c SyntaxError compile.log
rm pkg/bad.py compile.log
python3 -m compileall -q pkg; echo "compileall status $?"
find pkg -name '__pycache__' | sort
find pkg -name '*.pyc' -printf '%f\n' | sort
python3 -c 'import pkg, pkg.mathy, pkg.sub.deep; print(pkg.VALUE + 1, pkg.mathy.add(2, 3), pkg.sub.deep.RESULT); print(pkg.mathy.__cached__.split("/")[-1])'
python3 -m py_compile pkg/mathy.py && echo "py_compile ok"
python3 -B -c 'import sys; print("dont_write_bytecode", sys.dont_write_bytecode)'
find . -name '__pycache__' -prune -exec rm -rf {} +
find . | sort
