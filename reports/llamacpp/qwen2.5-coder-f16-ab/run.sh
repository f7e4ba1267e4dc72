#!/bin/bash
# f16 A/B: llama-bench, qeval at 898d409 (old f16 kernel), qeval at HEAD, same file, 2 threads.
B=~/.cache/qeval-llamacpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin
F=~/.cache/qeval-llamacpp/models/qwen2.5-coder-1.5b-instruct-q4_k_m.F16.gguf
O=/work/main/reports/llamacpp/qwen2.5-coder-f16-ab
mkdir -p $O
date -u > $O/when.txt
$B/llama-bench -m $F -p 512 -n 128 -r 2 -t 2 > $O/llama-bench.txt 2>&1
for q in old new; do
  Q=/tmp/qeval-898d409; [ $q = new ] && Q=/tmp/qeval-head
  /usr/bin/time -v $Q bench --model $F --gguf f16=$F --quants f16 --threads 2 --repeats 2 --quiet --out $O/qeval-$q > $O/qeval-$q.txt 2>&1
done
cat $O/llama-bench.txt | grep -E "pp512|tg128"; for q in old new; do grep -E "f16" $O/qeval-$q.txt | tail -3; done
