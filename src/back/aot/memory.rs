//! Where `predict` keeps each value of a chunk: the caller's rows, the object's read-only data,
//! or a region of one stack buffer. Regions are reused once their value is dead, so a chain of
//! layers needs two regions of its widest layer, as a ping-pong pair of buffers would. A
//! convolution's im2col matrix is a region of its own, live during its step only.

use super::window;
use crate::graph::{Graph, NodeId, Op};
use crate::ops::{ChannelOp, ConvOp, PoolOp};
use crate::passes::fuse::{Input, Plan, RowKernel, Step};
use std::collections::HashMap;

/// Where a value lives while `predict` computes a chunk of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The caller's input rows.
    Input,
    /// The caller's output rows.
    Output,
    /// A parameter, in the object's read-only data.
    Param(usize),
    /// The stack buffer, from this many floats on.
    Stack(usize),
}

/// The nodes one step reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// Nodes read.
    pub reads: Vec<NodeId>,
    /// Nodes written.
    pub writes: Vec<NodeId>,
    /// (read, written) pairs that may share memory when the read value dies at this step: the
    /// kernel reads each element before it writes the corresponding one.
    pub in_place: Vec<(NodeId, NodeId)>,
    /// Floats of scratch memory the step's kernel needs while it runs, whatever the rows.
    pub scratch: usize,
}

/// The nodes a forward step of an inference plan reads and writes; an error names a step no
/// object-file kernel computes.
pub fn access(graph: &Graph, plan: &Plan, step: &Step) -> Result<Access, String> {
    Ok(match step {
        Step::Gemm { a, b, out, .. } => Access {
            reads: vec![*a, *b],
            writes: vec![*out],
            // A product reads rows of `a` again for each column tile it writes.
            in_place: vec![],
            scratch: 0,
        },
        Step::Map(k) => {
            let map = &plan.maps[*k];
            let mut in_place = Vec::new();
            for input in &map.inputs {
                if let Input::Full(n) = *input {
                    in_place.extend(map.stores.iter().map(|&(_, s)| (n, s)));
                }
            }
            Access {
                reads: map
                    .inputs
                    .iter()
                    .map(|i| match *i {
                        Input::Full(n) | Input::Row(n) => n,
                    })
                    .collect(),
                writes: map.stores.iter().map(|&(_, n)| n).collect(),
                in_place,
                scratch: 0,
            }
        }
        Step::Row(RowKernel::Softmax { x, out }) | Step::Row(RowKernel::Maxout { x, out, .. }) => Access {
            reads: vec![*x],
            writes: vec![*out],
            in_place: vec![(*x, *out)],
            scratch: 0,
        },
        // Window kernels read their input again for every window that overlaps, and
        // concatenation writes a wider row than each part: none works in place.
        Step::Node(n) => match &graph.nodes[*n].op {
            Op::Conv(ConvOp::Conv { x, w, g }) => Access {
                reads: vec![*x, *w],
                writes: vec![*n],
                in_place: vec![],
                scratch: window::conv_scratch(g),
            },
            Op::Pool(PoolOp::MaxPool { x, .. } | PoolOp::AvgPool { x, .. }) => Access {
                reads: vec![*x],
                writes: vec![*n],
                in_place: vec![],
                scratch: 0,
            },
            Op::Channel(ChannelOp::Concat { parts, .. }) => Access {
                reads: parts.clone(),
                writes: vec![*n],
                in_place: vec![],
                scratch: 0,
            },
            other => return Err(format!("an object file has no kernel for {}", other.name())),
        },
        other => return Err(format!("an object file has no kernel for {other:?}")),
    })
}

/// Every value's place.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// The place of each node the steps read or write.
    pub places: HashMap<NodeId, Place>,
    /// The scratch memory of each step that needs some (by step index), from this many floats
    /// on in the stack buffer.
    pub scratch: HashMap<usize, usize>,
    /// Floats in the stack buffer.
    pub floats: usize,
}

/// Values that share one region: each one written in place of the one before, which died there.
struct Region {
    floats: usize,
    /// The steps it is live at (first write to last read, inclusive).
    first: usize,
    last: usize,
    offset: usize,
}

/// Places the values of `steps` (an inference graph's forward plan) for chunks of `rows` rows.
///
/// Regions get offsets largest first, each at the lowest offset clear of the regions live at
/// the same time (TensorFlow Lite's greedy-by-size arena plan): for a chain of layers that is
/// two regions of the widest layer.
pub fn place(graph: &Graph, plan: &Plan, steps: &[Step], rows: usize) -> Result<Memory, String> {
    let accesses: Vec<Access> = steps.iter().map(|s| access(graph, plan, s)).collect::<Result<_, _>>()?;
    let mut last_use: HashMap<NodeId, usize> = HashMap::new();
    for (s, a) in accesses.iter().enumerate() {
        for &n in a.reads.iter().chain(&a.writes) {
            last_use.insert(n, s);
        }
    }
    let mut places = HashMap::new();
    let mut region_of: HashMap<NodeId, usize> = HashMap::new();
    let mut regions: Vec<Region> = Vec::new();
    let mut scratch_of: HashMap<usize, usize> = HashMap::new();
    for (s, a) in accesses.iter().enumerate() {
        for &n in &a.reads {
            if region_of.contains_key(&n) || places.contains_key(&n) {
                continue;
            }
            let place = match graph.nodes[n].op {
                Op::Input => Place::Input,
                Op::Param(p) => Place::Param(p),
                ref op => return Err(format!("{op:?} is read before it is computed")),
            };
            places.insert(n, place);
        }
        let mut taken = Vec::new();
        for &n in &a.writes {
            if n == graph.output {
                places.insert(n, Place::Output);
                continue;
            }
            if region_of.contains_key(&n) || places.contains_key(&n) {
                return Err(format!("{:?} is written twice", graph.nodes[n].op));
            }
            let shape = graph.nodes[n].shape;
            let floats = shape.rows_for(rows) * shape.cols();
            let dying = a.in_place.iter().find_map(|&(read, written)| {
                let region = *region_of.get(&read)?;
                let free = written == n && last_use[&read] == s && !taken.contains(&read);
                (free && regions[region].floats >= floats).then_some((read, region))
            });
            let region = match dying {
                Some((read, region)) => {
                    taken.push(read);
                    region
                }
                None => {
                    regions.push(Region {
                        floats,
                        first: s,
                        last: s,
                        offset: 0,
                    });
                    regions.len() - 1
                }
            };
            regions[region].last = last_use[&n];
            region_of.insert(n, region);
        }
        if a.scratch > 0 {
            scratch_of.insert(s, regions.len());
            regions.push(Region {
                floats: a.scratch,
                first: s,
                last: s,
                offset: 0,
            });
        }
    }

    let mut order: Vec<usize> = (0..regions.len()).collect();
    order.sort_by_key(|&r| (std::cmp::Reverse(regions[r].floats), regions[r].first));
    let mut placed: Vec<usize> = Vec::new();
    for r in order {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .map(|&o| &regions[o])
            .filter(|o| o.first <= regions[r].last && regions[r].first <= o.last)
            .map(|o| (o.offset, o.offset + o.floats))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + regions[r].floats <= start {
                break;
            }
            offset = offset.max(end);
        }
        regions[r].offset = offset;
        placed.push(r);
    }
    for (&n, &r) in &region_of {
        places.insert(n, Place::Stack(regions[r].offset));
    }
    Ok(Memory {
        places,
        scratch: scratch_of.into_iter().map(|(s, r)| (s, regions[r].offset)).collect(),
        floats: regions.iter().map(|r| r.offset + r.floats).max().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Limits;
    use crate::diag::source::SourceMap;
    use ndarray::Array2;

    fn memory_of(body: &str) -> (Graph, Memory) {
        let text = format!("model m {{\n  {body}\n}}\ntrain {{\n  data \"x.csv\" validation 10%\n}}\n");
        let mut sources = SourceMap::new();
        let id = sources.add("m.net", text);
        let checked = crate::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 })
            .checked
            .expect("the spec checks clean");
        let graph = crate::graph::build(&checked);
        let params: Vec<Array2<f32>> = graph.params.iter().map(|p| Array2::zeros((p.rows, p.cols))).collect();
        let inference = {
            let width = graph.input_width;
            crate::passes::inference::inference(&graph, &params, &vec![0.0; width], &vec![1.0; width])
        };
        let plan = crate::passes::fuse::plan(&inference.graph);
        let memory = place(&inference.graph, &plan, &plan.forward, 16).expect("places");
        (inference.graph, memory)
    }

    /// A chain needs its two widest neighbouring values at once, no more: bias rows,
    /// activations, softmax and maxout work in place.
    #[test]
    fn a_chain_ping_pongs_between_two_regions() {
        let (graph, memory) =
            memory_of("input 784\n  dense 256 relu\n  dense 256 relu\n  dense 10 softmax\n  loss cross_entropy");
        assert_eq!(memory.floats, 2 * 16 * 256);
        assert_eq!(memory.places[&graph.input], Place::Input);
        assert_eq!(memory.places[&graph.output], Place::Output);
        let (graph, memory) = memory_of(
            "input 8\n  dense 40 relu\n  maxout 30 pieces 3\n  dense 10 softmax\n  dense 5 linear\n  loss mse",
        );
        // The product into the maxout's 30 units reads the 40 relu values.
        assert_eq!(memory.floats, 16 * (40 + 30));
        assert_eq!(memory.places[&graph.output], Place::Output);
    }

    /// Values live at the same step never share memory, unless one is written in place of the
    /// other; a convolution's scratch shares it with no value live at its step.
    #[test]
    fn live_values_do_not_overlap() {
        for body in [
            "input 5\n  dense 7 prelu(0.1)\n  dropout 0.3 scale_at_test\n  maxout 12 pieces 4 fixed_zero\n  dense 33 sigmoid\n  dense 3 softmax\n  loss cross_entropy",
            "input 2 6 6\n  conv a: 4 relu kernel 3 pad same\n  residual relu shortcut project {\n    conv 6 kernel 3 stride 2 pad same no_bias\n    batchnorm relu\n    conv 6 kernel 1\n  }\n  conv b: 3 kernel 1 stride 1\n  conv 2 kernel 3 pad same\n  concat b\n  maxpool 2\n  dense 3 softmax\n  loss cross_entropy",
        ] {
            check_no_overlap(body);
        }
    }

    fn check_no_overlap(body: &str) {
        let (graph, memory) = memory_of(body);
        let plan = crate::passes::fuse::plan(&graph);
        let accesses: Vec<Access> = plan
            .forward
            .iter()
            .map(|s| access(&graph, &plan, s).expect("has a kernel"))
            .collect();
        let span = |n: NodeId| {
            let first = accesses.iter().position(|a| a.writes.contains(&n)).expect("written");
            let last = accesses
                .iter()
                .rposition(|a| a.reads.contains(&n) || a.writes.contains(&n))
                .expect("used");
            (first, last)
        };
        let size = |n: NodeId| 16 * graph.nodes[n].shape.cols();
        let stack: Vec<(NodeId, usize)> = memory
            .places
            .iter()
            .filter_map(|(&n, p)| match *p {
                Place::Stack(o) => Some((n, o)),
                _ => None,
            })
            .collect();
        for &(x, ox) in &stack {
            for &(y, oy) in &stack {
                if x == y {
                    continue;
                }
                let ((fx, lx), (fy, ly)) = (span(x), span(y));
                let overlap_memory = ox < oy + size(y) && oy < ox + size(x);
                let overlap_time = fx <= ly && fy <= lx;
                // Written in place: `y` at the step where `x` dies, or the other way round.
                let in_place = (lx == fy && accesses[fy].in_place.contains(&(x, y)))
                    || (ly == fx && accesses[fx].in_place.contains(&(y, x)));
                if overlap_memory && overlap_time {
                    assert!(in_place && ox == oy, "{x:?} and {y:?} overlap");
                }
                assert!(ox + size(x) <= memory.floats);
            }
        }
        let with_scratch: Vec<usize> = (0..accesses.len()).filter(|&s| accesses[s].scratch > 0).collect();
        assert_eq!(memory.scratch.len(), with_scratch.len());
        for s in with_scratch {
            let (start, floats) = (memory.scratch[&s], accesses[s].scratch);
            assert!(start + floats <= memory.floats);
            for &(x, ox) in &stack {
                let (first, last) = span(x);
                if first <= s && s <= last {
                    assert!(
                        start + floats <= ox || ox + size(x) <= start,
                        "step {s}'s scratch overlaps {x:?}"
                    );
                }
            }
        }
    }
}
