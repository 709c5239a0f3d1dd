# tee to several files, appending, and in the middle of a pipeline.
echo "shared line" | tee t1 t2 > /dev/null
cat t1 t2
echo "more" | tee -a t1
cat t1
seq 1 5 | tee t3 | wc -l
cat t3
echo "to stderr too" | tee /dev/stderr 2>/dev/null | tr a-z A-Z
