//! Choosing one version of each pack from everything that was requested, and the order to
//! commit them in.
//!
//! Pure logic over fetch results, so every dependency rule (each pack once, conflicts name both
//! requesters, cycles are reported, a failed dependency fails its dependents) is unit-tested
//! without git or the network.

use std::collections::BTreeMap;

/// One fetched request, reduced to what the choice needs.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    /// Commit or content digest: equal identities install identical files.
    pub identity: String,
    /// The request named a version or ref explicitly.
    pub pinned: bool,
    /// How to show this version in a message, e.g. `v1.2.0 (abc1234) from https://…`.
    pub describe: String,
    /// Request indexes of this pack's dependencies.
    pub deps: Vec<usize>,
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This request's fetch is the pack that gets installed.
    Chosen,
    /// Another request (index) installs the same pack; nothing to do for this one.
    SameAs(usize),
    Failed(String),
}

#[derive(Debug)]
pub struct Resolution {
    pub decisions: Vec<Decision>,
    /// Chosen requests, dependencies before their dependents.
    pub commit_order: Vec<usize>,
}

/// `specs[i]` and `requested_by[i]` describe request `i`; `results[i]` is its fetch.
pub fn resolve(
    specs: &[String],
    requested_by: &[Vec<String>],
    results: &[Result<Candidate, String>],
) -> Resolution {
    let mut decisions: Vec<Decision> = results
        .iter()
        .map(|r| match r {
            Ok(_) => Decision::Chosen,
            Err(message) => Decision::Failed(message.clone()),
        })
        .collect();
    choose_one_per_name(specs, requested_by, results, &mut decisions);
    let chosen_of = |request: usize, decisions: &[Decision]| match decisions[request] {
        Decision::SameAs(target) => target,
        _ => request,
    };
    let deps_of = |request: usize, decisions: &[Decision]| -> Vec<usize> {
        match &results[request] {
            Ok(candidate) => candidate
                .deps
                .iter()
                .map(|&d| chosen_of(d, decisions))
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    let name_of = |request: usize| match &results[request] {
        Ok(c) => c.name.clone(),
        Err(_) => specs[request].clone(),
    };

    for cycle in find_cycles(results.len(), &decisions, &deps_of) {
        let path: Vec<String> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&r| name_of(r))
            .collect();
        let message = format!(
            "dependency cycle: {}\n  remove one of these dependencies from its pack.yaml",
            path.join(" -> ")
        );
        for &request in &cycle {
            decisions[request] = Decision::Failed(message.clone());
        }
    }

    // A pack whose dependency failed is not installed: it would not work.
    loop {
        let mut changed = false;
        for request in 0..results.len() {
            if decisions[request] != Decision::Chosen {
                continue;
            }
            if let Some(dep) = deps_of(request, &decisions)
                .into_iter()
                .find(|&d| matches!(decisions[d], Decision::Failed(_)))
            {
                decisions[request] = Decision::Failed(format!(
                    "its dependency {} could not be installed",
                    specs[dep]
                ));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    let commit_order = topological_order(results.len(), &decisions, &deps_of);
    Resolution {
        decisions,
        commit_order,
    }
}

/// Groups successful fetches by pack name. Pinned requests decide when there are any; two
/// different versions among the deciding requests are a conflict that fails the whole group.
fn choose_one_per_name(
    specs: &[String],
    requested_by: &[Vec<String>],
    results: &[Result<Candidate, String>],
    decisions: &mut [Decision],
) {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (request, result) in results.iter().enumerate() {
        if let Ok(candidate) = result {
            groups
                .entry(candidate.name.as_str())
                .or_default()
                .push(request);
        }
    }
    let candidate = |request: usize| results[request].as_ref().expect("grouped requests are Ok");
    for (name, members) in groups {
        let pinned: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&r| candidate(r).pinned)
            .collect();
        let deciding = if pinned.is_empty() {
            members.clone()
        } else {
            pinned
        };
        let chosen = deciding[0];
        if let Some(&other) = deciding
            .iter()
            .find(|&&r| candidate(r).identity != candidate(chosen).identity)
        {
            let want = |r: usize| {
                format!(
                    "{} (requested by {}) gives {}",
                    specs[r],
                    requested_by[r].join(", "),
                    candidate(r).describe
                )
            };
            let message = format!(
                "pack {name} is wanted at two different versions: {}; {}\n  make the requesters agree on one version, or name the version you want on the command line",
                want(chosen),
                want(other)
            );
            for &request in &members {
                decisions[request] = Decision::Failed(message.clone());
            }
            continue;
        }
        for &request in &members {
            if request != chosen {
                decisions[request] = Decision::SameAs(chosen);
            }
        }
    }
}

/// Cycles among chosen requests, each as the list of requests along it, found in request order.
fn find_cycles(
    count: usize,
    decisions: &[Decision],
    deps_of: &dyn Fn(usize, &[Decision]) -> Vec<usize>,
) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        node: usize,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
        decisions: &[Decision],
        deps_of: &dyn Fn(usize, &[Decision]) -> Vec<usize>,
    ) {
        marks[node] = Mark::OnPath;
        path.push(node);
        for dep in deps_of(node, decisions) {
            if decisions[dep] != Decision::Chosen {
                continue;
            }
            match marks[dep] {
                Mark::New => visit(dep, marks, path, cycles, decisions, deps_of),
                Mark::OnPath => {
                    let start = path.iter().position(|&n| n == dep).unwrap_or(0);
                    cycles.push(path[start..].to_vec());
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[node] = Mark::Done;
    }
    let mut marks = vec![Mark::New; count];
    let mut cycles = Vec::new();
    for node in 0..count {
        if decisions[node] == Decision::Chosen && marks[node] == Mark::New {
            visit(
                node,
                &mut marks,
                &mut Vec::new(),
                &mut cycles,
                decisions,
                deps_of,
            );
        }
    }
    cycles
}

fn topological_order(
    count: usize,
    decisions: &[Decision],
    deps_of: &dyn Fn(usize, &[Decision]) -> Vec<usize>,
) -> Vec<usize> {
    let mut placed = vec![false; count];
    let mut order = Vec::new();
    fn place(
        node: usize,
        placed: &mut [bool],
        order: &mut Vec<usize>,
        decisions: &[Decision],
        deps_of: &dyn Fn(usize, &[Decision]) -> Vec<usize>,
    ) {
        if placed[node] {
            return;
        }
        placed[node] = true;
        for dep in deps_of(node, decisions) {
            if decisions[dep] == Decision::Chosen {
                place(dep, placed, order, decisions, deps_of);
            }
        }
        order.push(node);
    }
    for node in 0..count {
        if decisions[node] == Decision::Chosen {
            place(node, &mut placed, &mut order, decisions, deps_of);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, identity: &str, pinned: bool, deps: &[usize]) -> Result<Candidate, String> {
        Ok(Candidate {
            name: name.into(),
            identity: identity.into(),
            pinned,
            describe: format!("{name}@{identity}"),
            deps: deps.to_vec(),
        })
    }

    fn run(results: Vec<Result<Candidate, String>>) -> Resolution {
        let specs: Vec<String> = (0..results.len()).map(|i| format!("spec{i}")).collect();
        let requested_by: Vec<Vec<String>> = (0..results.len())
            .map(|i| vec![format!("req{i}")])
            .collect();
        resolve(&specs, &requested_by, &results)
    }

    #[test]
    fn dependencies_commit_first_and_duplicates_merge() {
        // 0: app depends on 1 (lib) and 2 (lib again, same commit).
        let r = run(vec![
            ok("app", "a", false, &[1, 2]),
            ok("lib", "l", false, &[]),
            ok("lib", "l", false, &[]),
        ]);
        assert_eq!(
            r.decisions,
            vec![Decision::Chosen, Decision::Chosen, Decision::SameAs(1)]
        );
        assert_eq!(r.commit_order, vec![1, 0]);
    }

    #[test]
    fn pinned_request_wins_over_unpinned() {
        let r = run(vec![
            ok("lib", "new", false, &[]),
            ok("lib", "old", true, &[]),
        ]);
        assert_eq!(r.decisions, vec![Decision::SameAs(1), Decision::Chosen]);
    }

    #[test]
    fn two_pinned_versions_conflict_naming_both_requesters() {
        let r = run(vec![
            ok("lib", "v1", true, &[]),
            ok("lib", "v2", true, &[]),
            ok("app", "a", false, &[1]),
        ]);
        let Decision::Failed(message) = &r.decisions[0] else {
            panic!("{:?}", r.decisions)
        };
        assert!(
            message.contains("req0") && message.contains("req1"),
            "{message}"
        );
        assert!(
            message.contains("lib@v1") && message.contains("lib@v2"),
            "{message}"
        );
        assert!(matches!(&r.decisions[2], Decision::Failed(m) if m.contains("spec1")));
        assert!(r.commit_order.is_empty());
    }

    #[test]
    fn cycles_are_reported_with_their_path() {
        let r = run(vec![
            ok("a", "1", false, &[1]),
            ok("b", "2", false, &[2]),
            ok("c", "3", false, &[0]),
            ok("d", "4", false, &[]),
        ]);
        let Decision::Failed(message) = &r.decisions[0] else {
            panic!()
        };
        assert!(message.contains("a -> b -> c -> a"), "{message}");
        assert_eq!(r.decisions[3], Decision::Chosen);
        assert_eq!(r.commit_order, vec![3]);
    }

    #[test]
    fn failed_dependency_fails_dependents_transitively() {
        let r = run(vec![
            ok("top", "t", false, &[1]),
            ok("mid", "m", false, &[2]),
            Err("boom".into()),
        ]);
        assert!(matches!(&r.decisions[1], Decision::Failed(m) if m.contains("spec2")));
        assert!(matches!(&r.decisions[0], Decision::Failed(m) if m.contains("spec1")));
    }
}
