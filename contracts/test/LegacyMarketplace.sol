// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/**
 * The compute marketplace as it was before settlement v2 (DESIGN.md §3.1), kept as a test fixture
 * only: test/integration/chain/v2/attacks.test.ts shows each v1 attack working on it and refused by
 * contracts/MarketplaceV2.sol. Nothing in the daemon uses it.
 *
 * Units. Every amount is in base units of `token`. Times are unix seconds (block.timestamp).
 * A usage record counts CPU and GPU time in milliseconds and egress in bytes; the rate card
 * prices them per second and per GiB, so a record's amount is, term by term rounded down:
 *
 *   perSecond * (t1 - t0)
 * + perCpuSecond * cpuMillis / 1000
 * + perGpuSecond * gpuMillis / 1000
 * + perGiBEgress * txBytes / 2^30
 *
 * Memory is reserved for the whole lease, so its price is folded into `perSecond` by the
 * provider; `memoryByteSeconds` and `rxBytes` are recorded for the tenant's audit, not priced.
 * A lease stores only keccak256(abi.encode(rates)); the rates are in LeaseOpened, and
 * `disputeUsage` takes them back as an argument.
 *
 * Usage records are the leaves of an OpenZeppelin StandardMerkleTree with leaf types
 * (uint256 leaseId, uint64 seq, uint64 t0, uint64 t1, uint64 cpuMillis, uint256 memoryByteSeconds,
 *  uint64 gpuMillis, uint64 rxBytes, uint64 txBytes, uint256 amount), i.e. the leaf is
 * keccak256(bytes.concat(keccak256(abi.encode(record)))).
 *
 * Money flow. `openLease` escrows the tenant's deposit. `redeem` (checkpoint signed by both
 * sides) pays the provider at once. `claim` (a provider-signed checkpoint, which anyone may
 * submit; the money only ever goes to the provider) becomes payable `challengeWindow` seconds
 * later through `finalizeClaim`, which credits the provider's earnings; `withdraw` pays them out.
 * A lease ends at `closeLease` or after `maxDuration`; claims are accepted until
 * `challengeWindow` after the end, and `settleLease` then returns the rest of the escrow.
 *
 * Bonds. A provider registers with at least `minBond`; `unregister` stops new leases at once and
 * `withdrawBond` returns the bond `unbondingDelay` later (choose it longer than the longest lease
 * plus the challenge window). Equivocation (two signed checkpoints, same lease and seq, different
 * roots) sends the whole bond to that lease's tenant and bars the provider for good. A usage
 * record disproving a pending claim drops the claim and bars unilateral claims on that lease.
 *
 * The token must be a plain ERC-20 (no fee on transfer, no rebasing): escrow is booked at face value.
 */
contract LegacyMarketplace is EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;

    // ---------------------------------------------------------------- types

    struct Rates {
        uint256 perSecond;
        uint256 perCpuSecond;
        uint256 perGpuSecond;
        uint256 perGiBEgress;
    }

    struct Quote {
        address provider;
        address tenant;
        bytes32 manifestHash;
        Rates rates;
        uint256 maxRatePerSecond;
        uint64 maxDuration;
        uint64 expiresAt;
        uint256 nonce;
    }

    struct Checkpoint {
        uint256 leaseId;
        uint64 seq;
        bytes32 usageRoot;
        uint256 cumulativeAmount;
        uint64 periodEnd;
        bytes32 resultDigest;
    }

    struct UsageRecord {
        uint256 leaseId;
        uint64 seq;
        uint64 t0;
        uint64 t1;
        uint64 cpuMillis;
        uint256 memoryByteSeconds;
        uint64 gpuMillis;
        uint64 rxBytes;
        uint64 txBytes;
        uint256 amount;
    }

    enum ProviderStatus {
        None,
        Active,
        Unbonding,
        Slashed
    }

    struct ProviderInfo {
        ProviderStatus status;
        uint64 unbondingEndsAt;
        /// Until then a lease of this provider can still be claimed or disputed: the bond stays.
        uint64 busyUntil;
        uint256 bond;
        string apiUrl;
        string metadata;
    }

    /// Packed into six slots: openLease pays for every one of them.
    struct Lease {
        address provider;
        uint64 startedAt;
        address tenant;
        uint64 closedAt;
        bool disputed;
        bool settled;
        uint64 maxDuration;
        uint128 maxRatePerSecond;
        uint128 escrow;
        uint128 paid;
        bytes32 manifestHash;
        /// keccak256(abi.encode(rates)); disputeUsage takes the rates and checks them against it.
        bytes32 ratesHash;
    }

    struct PendingClaim {
        uint256 cumulativeAmount;
        bytes32 usageRoot;
        uint64 seq;
        uint64 periodEnd;
        uint64 payableAt;
    }

    /// Why a usage record disproves a claim.
    enum Fault {
        WrongLease,
        IntervalOutsideLease,
        AmountMismatch,
        Equivocation
    }

    // ---------------------------------------------------------------- constants and state

    bytes32 public constant RATES_TYPEHASH =
        keccak256("Rates(uint256 perSecond,uint256 perCpuSecond,uint256 perGpuSecond,uint256 perGiBEgress)");
    bytes32 public constant QUOTE_TYPEHASH = keccak256(
        "Quote(address provider,address tenant,bytes32 manifestHash,Rates rates,uint256 maxRatePerSecond,uint64 maxDuration,uint64 expiresAt,uint256 nonce)"
        "Rates(uint256 perSecond,uint256 perCpuSecond,uint256 perGpuSecond,uint256 perGiBEgress)"
    );
    bytes32 public constant CHECKPOINT_TYPEHASH = keccak256(
        "Checkpoint(uint256 leaseId,uint64 seq,bytes32 usageRoot,uint256 cumulativeAmount,uint64 periodEnd,bytes32 resultDigest)"
    );

    IERC20 public immutable token;
    uint256 public immutable minBond;
    uint64 public immutable challengeWindow;
    uint64 public immutable unbondingDelay;

    uint256 public leaseCount;
    mapping(address provider => ProviderInfo) private _providers;
    mapping(uint256 leaseId => Lease) private _leases;
    mapping(uint256 leaseId => PendingClaim) private _pending;
    mapping(address provider => mapping(uint256 nonce => bool)) public quoteNonceUsed;
    mapping(address provider => uint256) public earnings;

    // ---------------------------------------------------------------- events

    event ProviderRegistered(address indexed provider, string apiUrl, string metadata, uint256 bond);
    event ProviderUpdated(address indexed provider, string apiUrl, string metadata);
    event ProviderUnbonding(address indexed provider, uint64 unbondingEndsAt);
    event BondWithdrawn(address indexed provider, uint256 amount);
    event ProviderSlashed(address indexed provider, uint256 indexed leaseId, uint256 amount, address beneficiary);
    event LeaseOpened(
        uint256 indexed leaseId,
        address indexed provider,
        address indexed tenant,
        bytes32 manifestHash,
        uint256 quoteNonce,
        uint256 deposit,
        uint64 startedAt,
        uint64 maxDuration,
        uint256 maxRatePerSecond,
        Rates rates
    );
    event LeaseClosed(uint256 indexed leaseId, address indexed by, uint64 closedAt);
    event CheckpointRedeemed(uint256 indexed leaseId, uint64 seq, uint256 cumulativeAmount, uint256 payout);
    event ClaimSubmitted(
        uint256 indexed leaseId, uint64 seq, uint256 cumulativeAmount, bytes32 usageRoot, uint64 payableAt
    );
    event ClaimFinalized(uint256 indexed leaseId, uint64 seq, uint256 payout);
    event ClaimDisputed(uint256 indexed leaseId, uint64 seq, address indexed disputer, Fault fault);
    event LeaseSettled(uint256 indexed leaseId, uint256 refund);
    event Withdrawn(address indexed provider, uint256 amount);

    // ---------------------------------------------------------------- errors

    error AlreadyRegistered(address provider);
    error BondTooLow(uint256 bond, uint256 minBond);
    error ProviderNotActive(address provider);
    error NotUnbonding(address provider);
    error BondLocked(uint64 unbondingEndsAt);
    error NotTenant(address caller, address tenant);
    error QuoteExpired(uint64 expiresAt);
    error QuoteAlreadyUsed(address provider, uint256 nonce);
    error InvalidQuote();
    error RatesMismatch();
    error ZeroDeposit();
    error BadSignature();
    error UnknownLease(uint256 leaseId);
    error NotLeaseParty(address caller);
    error LeaseAlreadyClosed(uint256 leaseId);
    error LeaseIsDisputed(uint256 leaseId);
    error StaleCheckpoint(uint256 cumulativeAmount, uint256 floor);
    error BadPeriodEnd(uint64 periodEnd);
    error ClaimAboveCap(uint256 cumulativeAmount, uint256 cap);
    error ClaimTooLate(uint256 leaseId);
    error EscrowExhausted(uint256 leaseId);
    error NoPendingClaim(uint256 leaseId);
    error ChallengeWindowOpen(uint64 payableAt);
    error ChallengeWindowOver(uint64 payableAt);
    error NotInUsageRoot();
    error DisputeRejected();
    error NotEquivocation();
    error AlreadySlashed(address provider);
    error SettlementNotDue(uint256 dueAt);
    error ClaimPending(uint64 payableAt);
    error AlreadySettled(uint256 leaseId);
    error NothingToWithdraw();

    constructor(IERC20 token_, uint256 minBond_, uint64 challengeWindow_, uint64 unbondingDelay_)
        EIP712("ProviderMarketplace", "1")
    {
        token = token_;
        minBond = minBond_;
        challengeWindow = challengeWindow_;
        unbondingDelay = unbondingDelay_;
    }

    // ---------------------------------------------------------------- provider registry

    function registerProvider(string calldata apiUrl, string calldata metadata, uint256 bond) external nonReentrant {
        ProviderInfo storage p = _providers[msg.sender];
        if (p.status != ProviderStatus.None) revert AlreadyRegistered(msg.sender);
        if (bond < minBond) revert BondTooLow(bond, minBond);
        p.status = ProviderStatus.Active;
        p.bond = bond;
        p.apiUrl = apiUrl;
        p.metadata = metadata;
        emit ProviderRegistered(msg.sender, apiUrl, metadata, bond);
        token.safeTransferFrom(msg.sender, address(this), bond);
    }

    function updateProvider(string calldata apiUrl, string calldata metadata) external {
        ProviderInfo storage p = _providers[msg.sender];
        if (p.status != ProviderStatus.Active) revert ProviderNotActive(msg.sender);
        p.apiUrl = apiUrl;
        p.metadata = metadata;
        emit ProviderUpdated(msg.sender, apiUrl, metadata);
    }

    /// Stops new leases at once; the bond stays slashable until `unbondingDelay` has passed.
    function unregister() external {
        ProviderInfo storage p = _providers[msg.sender];
        if (p.status != ProviderStatus.Active) revert ProviderNotActive(msg.sender);
        p.status = ProviderStatus.Unbonding;
        p.unbondingEndsAt = uint64(block.timestamp) + unbondingDelay;
        emit ProviderUnbonding(msg.sender, p.unbondingEndsAt);
    }

    function withdrawBond() external nonReentrant {
        ProviderInfo storage p = _providers[msg.sender];
        if (p.status != ProviderStatus.Unbonding) revert NotUnbonding(msg.sender);
        // Equivocation evidence must find a bond to slash for as long as any lease can be claimed.
        uint64 unlockAt = p.unbondingEndsAt > p.busyUntil ? p.unbondingEndsAt : p.busyUntil;
        if (block.timestamp < unlockAt) revert BondLocked(unlockAt);
        uint256 amount = p.bond;
        delete _providers[msg.sender];
        emit BondWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- leases

    /// The signed quote is the provider's acceptance: no provider transaction is needed.
    function openLease(Quote calldata quote, bytes calldata providerSig, uint256 deposit)
        external
        nonReentrant
        returns (uint256 leaseId)
    {
        if (msg.sender != quote.tenant) revert NotTenant(msg.sender, quote.tenant);
        if (block.timestamp > quote.expiresAt) revert QuoteExpired(quote.expiresAt);
        if (quote.maxDuration == 0 || quote.maxRatePerSecond == 0 || quote.maxRatePerSecond > type(uint128).max) {
            revert InvalidQuote();
        }
        if (deposit == 0) revert ZeroDeposit();
        if (_providers[quote.provider].status != ProviderStatus.Active) revert ProviderNotActive(quote.provider);
        if (quoteNonceUsed[quote.provider][quote.nonce]) revert QuoteAlreadyUsed(quote.provider, quote.nonce);
        if (ECDSA.recover(hashQuote(quote), providerSig) != quote.provider) revert BadSignature();

        quoteNonceUsed[quote.provider][quote.nonce] = true;
        _holdBondFor(quote.provider, quote.maxDuration);
        leaseId = ++leaseCount;
        Lease storage lease = _leases[leaseId];
        lease.provider = quote.provider;
        lease.tenant = quote.tenant;
        lease.startedAt = uint64(block.timestamp);
        lease.maxDuration = quote.maxDuration;
        lease.manifestHash = quote.manifestHash;
        lease.maxRatePerSecond = uint128(quote.maxRatePerSecond);
        lease.escrow = SafeCast.toUint128(deposit);
        lease.ratesHash = keccak256(abi.encode(quote.rates));
        emit LeaseOpened(
            leaseId,
            quote.provider,
            quote.tenant,
            quote.manifestHash,
            quote.nonce,
            deposit,
            uint64(block.timestamp),
            quote.maxDuration,
            quote.maxRatePerSecond,
            quote.rates
        );
        token.safeTransferFrom(msg.sender, address(this), deposit);
    }

    function closeLease(uint256 leaseId) external {
        Lease storage lease = _lease(leaseId);
        if (msg.sender != lease.provider && msg.sender != lease.tenant) revert NotLeaseParty(msg.sender);
        if (lease.closedAt != 0) revert LeaseAlreadyClosed(leaseId);
        uint64 closedAt = uint64(Math.min(block.timestamp, uint256(lease.startedAt) + lease.maxDuration));
        lease.closedAt = closedAt;
        emit LeaseClosed(leaseId, msg.sender, closedAt);
    }

    /// Returns the rest of the escrow to the tenant once no claim can still arrive or be pending.
    function settleLease(uint256 leaseId) external nonReentrant {
        Lease storage lease = _lease(leaseId);
        if (lease.settled) revert AlreadySettled(leaseId);
        uint256 dueAt = uint256(leaseEnd(leaseId)) + challengeWindow;
        if (block.timestamp < dueAt) revert SettlementNotDue(dueAt);
        PendingClaim storage pending = _pending[leaseId];
        if (pending.payableAt != 0) {
            if (block.timestamp < pending.payableAt) revert ClaimPending(pending.payableAt);
            _finalize(leaseId, lease, pending);
        }
        uint128 refund = lease.escrow;
        lease.escrow = 0;
        lease.settled = true;
        emit LeaseSettled(leaseId, refund);
        if (refund > 0) token.safeTransfer(lease.tenant, refund);
    }

    // ---------------------------------------------------------------- payment

    /// Tenant-countersigned checkpoint: pays the increase over what was already paid, at once.
    function redeem(Checkpoint calldata cp, bytes calldata providerSig, bytes calldata tenantSig)
        external
        nonReentrant
    {
        Lease storage lease = _lease(cp.leaseId);
        bytes32 digest = hashCheckpoint(cp);
        if (ECDSA.recover(digest, providerSig) != lease.provider) revert BadSignature();
        if (ECDSA.recover(digest, tenantSig) != lease.tenant) revert BadSignature();
        if (cp.cumulativeAmount <= lease.paid) revert StaleCheckpoint(cp.cumulativeAmount, lease.paid);
        uint128 payout = uint128(Math.min(cp.cumulativeAmount - lease.paid, lease.escrow));
        if (payout == 0) revert EscrowExhausted(cp.leaseId);
        lease.paid += payout;
        lease.escrow -= payout;
        PendingClaim storage pending = _pending[cp.leaseId];
        if (pending.payableAt != 0 && pending.cumulativeAmount <= lease.paid) delete _pending[cp.leaseId];
        emit CheckpointRedeemed(cp.leaseId, cp.seq, cp.cumulativeAmount, payout);
        token.safeTransfer(lease.provider, payout);
    }

    /// Unilateral claim: capped at maxRatePerSecond * elapsed, payable after the challenge window.
    function claim(Checkpoint calldata cp, bytes calldata providerSig) external {
        Lease storage lease = _lease(cp.leaseId);
        if (lease.disputed) revert LeaseIsDisputed(cp.leaseId);
        if (ECDSA.recover(hashCheckpoint(cp), providerSig) != lease.provider) revert BadSignature();
        uint64 end = leaseEnd(cp.leaseId);
        if (block.timestamp >= uint256(end) + challengeWindow) revert ClaimTooLate(cp.leaseId);
        if (cp.periodEnd < lease.startedAt || cp.periodEnd > end || cp.periodEnd > block.timestamp) {
            revert BadPeriodEnd(cp.periodEnd);
        }
        PendingClaim storage pending = _pending[cp.leaseId];
        // A matured claim is paid before a newer one takes its place, or payment would wait for
        // the lease's last claim whenever claims come more often than the challenge window.
        if (pending.payableAt != 0 && block.timestamp >= pending.payableAt) _finalize(cp.leaseId, lease, pending);
        uint256 floor = Math.max(lease.paid, pending.cumulativeAmount);
        if (cp.cumulativeAmount <= floor) revert StaleCheckpoint(cp.cumulativeAmount, floor);
        uint256 cap = uint256(lease.maxRatePerSecond) * (cp.periodEnd - lease.startedAt);
        if (cp.cumulativeAmount > cap) revert ClaimAboveCap(cp.cumulativeAmount, cap);

        uint64 payableAt = uint64(block.timestamp) + challengeWindow;
        pending.cumulativeAmount = cp.cumulativeAmount;
        pending.usageRoot = cp.usageRoot;
        pending.seq = cp.seq;
        pending.periodEnd = cp.periodEnd;
        pending.payableAt = payableAt;
        emit ClaimSubmitted(cp.leaseId, cp.seq, cp.cumulativeAmount, cp.usageRoot, payableAt);
    }

    /// Anyone may finalise a claim whose window has passed; the payout goes to earnings.
    function finalizeClaim(uint256 leaseId) external nonReentrant {
        Lease storage lease = _lease(leaseId);
        PendingClaim storage pending = _pending[leaseId];
        if (pending.payableAt == 0) revert NoPendingClaim(leaseId);
        if (block.timestamp < pending.payableAt) revert ChallengeWindowOpen(pending.payableAt);
        _finalize(leaseId, lease, pending);
    }

    function withdraw() external nonReentrant {
        uint256 amount = earnings[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        earnings[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- disputes

    /**
     * A usage record inside the pending claim's root that the chain can show to be wrong: from
     * another lease, outside the lease's interval, or with an amount that does not follow from
     * the lease's rates. The claim is dropped and the lease can then be paid only by `redeem`.
     */
    function disputeUsage(uint256 leaseId, Rates calldata rates, UsageRecord calldata record, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Lease storage lease = _lease(leaseId);
        if (keccak256(abi.encode(rates)) != lease.ratesHash) revert RatesMismatch();
        PendingClaim storage pending = _pending[leaseId];
        if (pending.payableAt == 0) revert NoPendingClaim(leaseId);
        if (block.timestamp >= pending.payableAt) revert ChallengeWindowOver(pending.payableAt);
        if (!MerkleProof.verifyCalldata(proof, pending.usageRoot, usageLeaf(record))) revert NotInUsageRoot();

        Fault fault;
        uint64 end = pending.periodEnd;
        if (record.leaseId != leaseId) {
            fault = Fault.WrongLease;
        } else if (record.t0 < lease.startedAt || record.t1 < record.t0 || record.t1 > end) {
            fault = Fault.IntervalOutsideLease;
        } else {
            (bool ok, uint256 expected) = tryUsageAmount(rates, record);
            if (ok && expected == record.amount) revert DisputeRejected();
            fault = Fault.AmountMismatch;
        }
        uint64 seq = pending.seq;
        delete _pending[leaseId];
        lease.disputed = true;
        emit ClaimDisputed(leaseId, seq, msg.sender, fault);
    }

    /// Two provider-signed checkpoints with the same seq and different roots: the bond goes to the tenant.
    function disputeEquivocation(
        Checkpoint calldata a,
        bytes calldata sigA,
        Checkpoint calldata b,
        bytes calldata sigB
    ) external nonReentrant {
        if (a.leaseId != b.leaseId || a.seq != b.seq || a.usageRoot == b.usageRoot) revert NotEquivocation();
        Lease storage lease = _lease(a.leaseId);
        if (ECDSA.recover(hashCheckpoint(a), sigA) != lease.provider) revert BadSignature();
        if (ECDSA.recover(hashCheckpoint(b), sigB) != lease.provider) revert BadSignature();
        ProviderInfo storage p = _providers[lease.provider];
        if (p.status == ProviderStatus.Slashed) revert AlreadySlashed(lease.provider);
        uint256 amount = p.bond;
        p.bond = 0;
        p.status = ProviderStatus.Slashed;
        lease.disputed = true;
        if (_pending[a.leaseId].payableAt != 0) {
            emit ClaimDisputed(a.leaseId, _pending[a.leaseId].seq, msg.sender, Fault.Equivocation);
            delete _pending[a.leaseId];
        }
        emit ProviderSlashed(lease.provider, a.leaseId, amount, lease.tenant);
        if (amount > 0) token.safeTransfer(lease.tenant, amount);
    }

    // ---------------------------------------------------------------- views

    function hashQuote(Quote calldata q) public view returns (bytes32) {
        bytes32 ratesHash = keccak256(
            abi.encode(RATES_TYPEHASH, q.rates.perSecond, q.rates.perCpuSecond, q.rates.perGpuSecond, q.rates.perGiBEgress)
        );
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    QUOTE_TYPEHASH,
                    q.provider,
                    q.tenant,
                    q.manifestHash,
                    ratesHash,
                    q.maxRatePerSecond,
                    q.maxDuration,
                    q.expiresAt,
                    q.nonce
                )
            )
        );
    }

    function hashCheckpoint(Checkpoint calldata cp) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CHECKPOINT_TYPEHASH, cp.leaseId, cp.seq, cp.usageRoot, cp.cumulativeAmount, cp.periodEnd, cp.resultDigest
                )
            )
        );
    }

    /// The StandardMerkleTree leaf of a usage record.
    function usageLeaf(UsageRecord calldata r) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(r))));
    }

    /// The amount a record must carry under `rates`; ok is false when it overflows (no honest record does).
    function tryUsageAmount(Rates memory rates, UsageRecord calldata r) public pure returns (bool ok, uint256 amount) {
        if (r.t1 < r.t0) return (false, 0);
        uint256 term;
        (ok, amount) = Math.tryMul(rates.perSecond, r.t1 - r.t0);
        if (!ok) return (false, 0);
        (ok, term) = Math.tryMul(rates.perCpuSecond, r.cpuMillis);
        if (!ok) return (false, 0);
        (ok, amount) = Math.tryAdd(amount, term / 1000);
        if (!ok) return (false, 0);
        (ok, term) = Math.tryMul(rates.perGpuSecond, r.gpuMillis);
        if (!ok) return (false, 0);
        (ok, amount) = Math.tryAdd(amount, term / 1000);
        if (!ok) return (false, 0);
        (ok, term) = Math.tryMul(rates.perGiBEgress, r.txBytes);
        if (!ok) return (false, 0);
        (ok, amount) = Math.tryAdd(amount, term >> 30);
        if (!ok) return (false, 0);
    }

    function getProvider(address provider) external view returns (ProviderInfo memory) {
        return _providers[provider];
    }

    function getLease(uint256 leaseId) external view returns (Lease memory) {
        return _leases[leaseId];
    }

    function getPendingClaim(uint256 leaseId) external view returns (PendingClaim memory) {
        return _pending[leaseId];
    }

    /// When the lease stopped or will stop running: closedAt, else startedAt + maxDuration.
    function leaseEnd(uint256 leaseId) public view returns (uint64) {
        Lease storage lease = _lease(leaseId);
        return lease.closedAt != 0 ? lease.closedAt : lease.startedAt + lease.maxDuration;
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internal

    function _lease(uint256 leaseId) private view returns (Lease storage lease) {
        lease = _leases[leaseId];
        if (lease.provider == address(0)) revert UnknownLease(leaseId);
    }

    /// The last claim can come challengeWindow after the lease ends, and be disputed for another.
    function _holdBondFor(address provider, uint64 maxDuration) private {
        uint64 until = SafeCast.toUint64(block.timestamp + uint256(maxDuration) + 2 * uint256(challengeWindow));
        ProviderInfo storage p = _providers[provider];
        if (until > p.busyUntil) p.busyUntil = until;
    }

    function _finalize(uint256 leaseId, Lease storage lease, PendingClaim storage pending) private {
        uint256 due = pending.cumulativeAmount > lease.paid ? pending.cumulativeAmount - lease.paid : 0;
        uint128 payout = uint128(Math.min(due, lease.escrow));
        uint64 seq = pending.seq;
        lease.paid += payout;
        lease.escrow -= payout;
        earnings[lease.provider] += payout;
        delete _pending[leaseId];
        emit ClaimFinalized(leaseId, seq, payout);
    }
}
