"""Software prefetch for the labeling kernels: ask for a cache line before it is read.

A round votes its points in the second level's order, which the processor cannot guess,
so each vote waits on memory for the point's neighbour list, its neighbours' labels and
the lists of the points that list it. The kernels know that order in advance (it is
sorted before the first vote), so they ask for the lines of the points a few steps ahead
(`AHEAD`) while voting the current one. `prefetch` is LLVM's ``llvm.prefetch`` hint: it
never faults and changes no result, only when the memory arrives.

numba has no prefetch of its own; this is the one `numba.extending.intrinsic` it needs.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Steps ahead of the current vote at which a point's memory is asked for: far enough for
# a memory read (~100 ns) to arrive, near enough for the lines to still be in cache.
# Measured at 1M and 10M points on random graphs: 4, 8, 16 and 32 within noise of each
# other; each stage of `hdl._prefetch_votes` is one AHEAD apart.
AHEAD = 8
# Below this many points a labeling's arrays sit in cache and the hints only cost time
# (at 10,000 points on a random graph: 26 against 22.5 ns per edge; at 100,000 the hints
# already win, 41 against 54). Read by `worth_it` at each labeling.
MIN_POINTS = 50_000


def worth_it(n: int) -> bool:
    """Should a labeling of `n` points prefetch? (`MIN_POINTS`, read at each call.)"""
    return n >= MIN_POINTS


@intrinsic
def prefetch(typingctx, array, index):
    """Hint that ``array[index]`` (a 1-D array) will be read soon."""
    if not (isinstance(array, types.Array) and array.ndim == 1
            and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array_value = context.make_array(array_type)(context, builder, args[0])
        address = builder.gep(array_value.data, [args[1]])
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        llvm_prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read (0), keep in all cache levels (3), data cache (1)
        builder.call(llvm_prefetch, [builder.bitcast(address, byte_pointer),
                                     i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen
