# layers.awk — checks the folder-level include graph of a source tree
# against a layer order (used by test_layers.sh; run on its own as
#   awk -v layers="core formats ..." -f tests/sh/layers.awk EDGES
# where EDGES has one line per #include: FROM<TAB>TO<TAB>FILE:LINE).
#
# A folder may include its own headers and those of folders before it in
# `layers`. Reports, one line each, and exits 1 when there is any:
#   FILE:LINE: FROM includes TO, which is not below it (layers: ...)
#   include cycle: a -> b -> a (a: FILE:LINE, b: FILE:LINE)
#   folder X is not in the layer list
# A cycle is reported on its own as well as through the order, so that the
# message says what to untangle even when the order itself is what is wrong.
BEGIN {
    FS = "\t"
    nl = split(layers, order, " ")
    for (i = 1; i <= nl; i++) rank[order[i]] = i
    bad = 0
}
{
    from = $1; to = $2; where = $3
    folder[from] = 1; folder[to] = 1
    if (from == to) next
    key = from SUBSEP to
    if (!(key in edge)) {
        edge[key] = where
        nadj[from]++
        adj[from, nadj[from]] = to
    }
    if ((from in rank) && (to in rank) && rank[to] >= rank[from]) {
        printf "%s: %s includes %s, which is not below it (layers: %s)\n", where, from, to, layers
        bad = 1
    }
}
function dfs(v,    i, j, k, w, nxt, path, wh) {
    color[v] = 1
    stack[++depth] = v
    for (i = 1; i <= nadj[v]; i++) {
        w = adj[v, i]
        if (color[w] == 1) { # a back edge: the cycle is the stack from w on
            for (k = 1; stack[k] != w; k++) ;
            path = ""; wh = ""
            for (j = k; j <= depth; j++) {
                nxt = j < depth ? stack[j + 1] : w
                path = path stack[j] " -> "
                wh = wh (j > k ? ", " : "") stack[j] ": " edge[stack[j], nxt]
            }
            print "include cycle: " path w " (" wh ")"
            bad = 1
        } else if (!color[w]) {
            dfs(w)
        }
    }
    depth--
    color[v] = 2
}
END {
    for (f in folder)
        if (!(f in rank)) {
            print "folder " f " is not in the layer list (" layers "): add it where it belongs"
            bad = 1
        }
    # a fixed visiting order, so that the same tree prints the same cycles
    for (i = 1; i <= nl; i++)
        if (!color[order[i]]) dfs(order[i])
    for (f in folder)
        if (!color[f]) dfs(f)
    exit bad
}
