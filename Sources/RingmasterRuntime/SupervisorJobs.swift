import RingmasterCore

/// Jobs and rollbacks as the runtime delivers them: the core decides when a command given
/// with a job id is done (`.jobFinished`) and when a canary was rolled back (`.rolledBack`);
/// the supervisor hands both to its observers (the D-Bus layer) once the step that decided
/// them has been performed.
extension Supervisor {
    /// Runs what the last step finished (job results, rollbacks), in order.
    func deliverFinishedWork() {
        guard !finishedWork.isEmpty, !deliveringFinishedWork else { return }
        deliveringFinishedWork = true
        defer { deliveringFinishedWork = false }
        while !finishedWork.isEmpty {
            let work = finishedWork.removeFirst()
            work()
        }
    }

    /// A new job id (never 0, which D-Bus clients may read as "none").
    public func allocateJobID() -> JobID {
        nextJobID = nextJobID == UInt32.max ? 1 : nextJobID + 1
        return JobID(nextJobID)
    }
}
