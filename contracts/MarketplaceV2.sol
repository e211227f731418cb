// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/**
 * The compute marketplace, settlement v2 (docs/settlement-v2.md): payment bound to usage records
 * that the chain can check one by one and pair by pair, a bond that deters, late claims capped
 * instead of forfeited, and a payout address per provider.
 *
 * Units. Amounts are base units of `token`; times are unix seconds. A usage record counts CPU and
 * GPU time in milliseconds and egress in bytes; its amount is, term by term rounded down,
 *
 *   perSecond * (t1 - t0) + perCpuSecond * cpuMillis / 1000 + perGpuSecond * gpuMillis / 1000
 *   + perGiBEgress * txBytes / 2^30
 *
 * Allocation. The quote commits what the lease may physically use: `cpuMillicores` (thousandths of
 * a core), `gpuCount`, `egressBytesPerSecond`. A record over [t0, t1] may count at most
 * cpuMillicores * (t1 - t0) CPU-ms, gpuCount * (t1 - t0) * 1000 GPU-ms and
 * egressBytesPerSecond * (t1 - t0) bytes sent. Hence a record never costs more than
 * ceilingRate * (t1 - t0), where ceilingRate = perSecond + ceil(perCpuSecond * cpuMillicores / 1000)
 * + perGpuSecond * gpuCount + ceil(perGiBEgress * egressBytesPerSecond / 2^30): a unilateral claim is
 * capped at ceilingRate * (periodEnd - startedAt), which valid records never reach.
 *
 * Records. The leaves of an OpenZeppelin StandardMerkleTree with leaf types
 * (uint256 leaseId, uint64 index, uint64 t0, uint64 t1, uint64 cpuMillis, uint256 memoryByteSeconds,
 *  uint64 gpuMillis, uint64 rxBytes, uint64 txBytes, uint256 amount, uint256 total),
 * leaf = keccak256(bytes.concat(keccak256(abi.encode(record)))). `index` counts from 0; `total`
 * is the running sum of the amounts of records 0..index. A lease's records are contiguous: record
 * i+1 starts where record i ends, the first starts at or after the lease started, each lasts at
 * least a second. A checkpoint commits to the first `recordCount` of them: its root, its
 * cumulativeAmount (= the last record's total, never cut to a cap: the escrow cuts the payout)
 * and its periodEnd (= the last record's t1).
 *
 * Disputes. A unilateral claim waits `challengeWindow`; any overcharge in it is disproved in one
 * transaction with records the tenant was served, each with its proof against the claim's root:
 *  - disputeRecord, one record: of another lease; index >= recordCount; empty, reversed or outside
 *    [startedAt, periodEnd]; usage above the allocation; amount not following the rates; the first
 *    record's total not its amount; the last record's total not the cumulativeAmount or its t1 not
 *    the periodEnd (and bounds for the records before and after it, see `recordFault`).
 *  - disputeRecordPair, records i and i+1: a gap, an overlap or reversed order (t0 of i+1 is not
 *    t1 of i); a running total that does not add up (total of i+1 is not total of i + amount of
 *    i+1). Or two different records with one index; or records further apart that leave too little
 *    time or too much money between them (see `pairFault`).
 * Served every record, a tenant thus proves any cumulativeAmount that is not the sum of records that
 * follow the rates, stay inside the allocation and tile [first t0, periodEnd] without overlap.
 * Served only some, it still bounds the claim by their sum plus ceilingRate times the time they do
 * not cover. A dispute upheld drops the claim and slashes the provider.
 *
 * Equivocation: two provider-signed checkpoints of one lease that cannot both be prefixes of one
 * valid record sequence (see `checkpointsConflict`), or two provider-signed roots holding different
 * records at one index below both record counts. It needs no pending claim. Signing the same
 * content twice is never equivocation.
 *
 * Bond. Slashing takes the whole bond, marks the provider Slashed for good (no new lease, no new
 * claim, no pending claim finalised; countersigned redeems still pay) and splits the bond: at most
 * FINDER_REWARD_BPS to whoever sent the evidence, at most COMPENSATION_BPS (and never more than the
 * lease's deposit) to that lease's tenant, the rest to `treasury`. Nothing goes to the provider or
 * its payout address in either role, so slashing oneself through a lease with oneself as tenant
 * costs at least 100% - FINDER_REWARD_BPS of the bond, and through a second address at least
 * 100% - FINDER_REWARD_BPS - COMPENSATION_BPS.
 *
 * Timeline. A lease ends at closeLease or startedAt + maxDuration. Claims until end +
 * challengeWindow are on time. Until lateWindow after that a claim is late: still accepted (until
 * the lease is settled), with the same cap, but LATE_PENALTY_BPS of what it adds is left to the
 * tenant; later it is refused (ClaimTooLate). settleLease returns the rest of the deposit to the
 * tenant: the provider may settle from end + challengeWindow (it waives late claims), anyone from
 * end + challengeWindow + lateWindow (or from end + challengeWindow once the provider is slashed).
 *
 * Money out. Redeemed and finalised amounts are credited to the provider's earnings; `withdraw`
 * pays them, and `withdrawBond` the bond, to the provider's payout address only. The payout
 * address is named at registration and changed only by itself (`setPayout`): the provider's key
 * is a hot key, and a stolen hot key must not redirect the money.
 *
 * Storage. A lease is three slots: the hash of its Terms (fixed at open; every later call passes
 * them as calldata), one packed slot (paid, pending, payableAt, end) and the EIP-712 digest of the
 * pending claim's checkpoint. Its id is (provider << 96) | quote nonce, so a used quote is a lease
 * that exists. Amounts per lease fit in uint96, times in uint32 (until 2106).
 *
 * The token must be a plain ERC-20 (no fee on transfer, no rebasing).
 */
contract MarketplaceV2 is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ---------------------------------------------------------------- types

    struct Rates {
        uint256 perSecond;
        uint256 perCpuSecond;
        uint256 perGpuSecond;
        uint256 perGiBEgress;
    }

    /// What the lease may physically use, committed at open; records above it are disputable.
    struct Allocation {
        uint64 cpuMillicores;
        uint64 gpuCount;
        uint64 egressBytesPerSecond;
    }

    struct Quote {
        address provider;
        address tenant;
        bytes32 manifestHash;
        Rates rates;
        Allocation allocation;
        uint64 maxDuration;
        uint64 expiresAt;
        uint96 nonce;
    }

    /// Fixed at open: only its hash is stored, every later call passes it back.
    struct Terms {
        address provider;
        address tenant;
        uint64 startedAt;
        uint96 deposit;
        Rates rates;
        Allocation allocation;
    }

    struct Checkpoint {
        uint256 leaseId;
        bytes32 usageRoot;
        uint64 recordCount;
        uint256 cumulativeAmount;
        uint64 periodEnd;
        bytes32 resultDigest;
    }

    struct SignedCheckpoint {
        Checkpoint checkpoint;
        bytes signature;
    }

    struct UsageRecord {
        uint256 leaseId;
        uint64 index;
        uint64 t0;
        uint64 t1;
        uint64 cpuMillis;
        uint256 memoryByteSeconds;
        uint64 gpuMillis;
        uint64 rxBytes;
        uint64 txBytes;
        uint256 amount;
        uint256 total;
    }

    struct ProvenRecord {
        UsageRecord record;
        bytes32[] proof;
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
        uint96 bond;
        /// Receives every withdrawal; changed only by itself.
        address payout;
        uint96 earnings;
        string apiUrl;
        string metadata;
    }

    struct Lease {
        bytes32 termsHash;
        /// Credited to the provider so far (redeemed and finalised).
        uint96 paid;
        /// What the pending claim brings `paid` up to; 0 when none.
        uint96 pending;
        /// When the pending claim may be finalised; 0 when none.
        uint32 payableAt;
        /// startedAt + maxDuration, or when it was closed; 0 once settled.
        uint32 end;
        /// EIP-712 digest of the pending claim's checkpoint: the evidence disputes refer to.
        bytes32 claimDigest;
    }

    /// Why evidence disproves a claim or slashes a provider.
    enum Fault {
        WrongLease,
        IndexOutOfRange,
        BadInterval,
        OverAllocation,
        AmountMismatch,
        TotalMismatch,
        PeriodMismatch,
        NotContiguous,
        DuplicateIndex,
        Equivocation
    }

    // ---------------------------------------------------------------- constants and state

    uint256 private constant BPS = 10_000;
    /// Share of what a late claim adds that is left to the tenant.
    uint256 public constant LATE_PENALTY_BPS = 1_000;
    /// Most of a slashed bond the sender of the evidence gets.
    uint256 public constant FINDER_REWARD_BPS = 1_000;
    /// Most of a slashed bond the harmed lease's tenant gets (and never more than its deposit).
    uint256 public constant COMPENSATION_BPS = 5_000;

    bytes32 public constant QUOTE_TYPEHASH = keccak256(
        "Quote(address provider,address tenant,bytes32 manifestHash,Rates rates,Allocation allocation,uint64 maxDuration,uint64 expiresAt,uint96 nonce)"
        "Allocation(uint64 cpuMillicores,uint64 gpuCount,uint64 egressBytesPerSecond)"
        "Rates(uint256 perSecond,uint256 perCpuSecond,uint256 perGpuSecond,uint256 perGiBEgress)"
    );
    bytes32 public constant RATES_TYPEHASH =
        keccak256("Rates(uint256 perSecond,uint256 perCpuSecond,uint256 perGpuSecond,uint256 perGiBEgress)");
    bytes32 public constant ALLOCATION_TYPEHASH =
        keccak256("Allocation(uint64 cpuMillicores,uint64 gpuCount,uint64 egressBytesPerSecond)");
    bytes32 public constant CHECKPOINT_TYPEHASH = keccak256(
        "Checkpoint(uint256 leaseId,bytes32 usageRoot,uint64 recordCount,uint256 cumulativeAmount,uint64 periodEnd,bytes32 resultDigest)"
    );

    IERC20 public immutable token;
    /// Receives what a slash does not pay out (a burn address burns it).
    address public immutable treasury;
    uint256 public immutable minBond;
    uint32 public immutable challengeWindow;
    /// How long after end + challengeWindow a late claim is safe from anyone settling the lease.
    uint32 public immutable lateWindow;
    uint64 public immutable unbondingDelay;

    mapping(address provider => ProviderInfo) private _providers;
    mapping(uint256 leaseId => Lease) private _leases;

    // ---------------------------------------------------------------- events

    event ProviderRegistered(address indexed provider, string apiUrl, string metadata, uint256 bond, address payout);
    event ProviderUpdated(address indexed provider, string apiUrl, string metadata);
    event PayoutChanged(address indexed provider, address payout);
    event ProviderUnbonding(address indexed provider, uint64 unbondingEndsAt);
    event BondWithdrawn(address indexed provider, address payout, uint256 amount);
    event ProviderSlashed(
        address indexed provider,
        uint256 indexed leaseId,
        Fault fault,
        uint256 bond,
        address finder,
        uint256 reward,
        uint256 compensation,
        uint256 toTreasury
    );
    event LeaseOpened(
        uint256 indexed leaseId,
        address indexed provider,
        address indexed tenant,
        bytes32 manifestHash,
        uint64 maxDuration,
        Terms terms
    );
    event LeaseClosed(uint256 indexed leaseId, address indexed by, uint32 end);
    event CheckpointRedeemed(uint256 indexed leaseId, uint256 cumulativeAmount, uint256 credited);
    /// `checkpoint` is the claimed checkpoint's EIP-712 digest; `payableTo` what `paid` becomes when final.
    event ClaimSubmitted(
        uint256 indexed leaseId, bytes32 checkpoint, uint256 cumulativeAmount, uint256 payableTo, uint32 payableAt, bool late
    );
    event ClaimFinalized(uint256 indexed leaseId, uint256 credited);
    event ClaimDisputed(uint256 indexed leaseId, address indexed disputer, Fault fault);
    event LeaseSettled(uint256 indexed leaseId, uint256 paid, uint256 refund);
    /// To the provider's payout address at the time (ProviderRegistered / PayoutChanged).
    event Withdrawn(address indexed provider, uint256 amount);

    // ---------------------------------------------------------------- errors

    error InvalidParameter(string name);
    error AlreadyRegistered(address provider);
    error BondTooLow(uint256 bond, uint256 minBond);
    error InvalidPayout();
    error NotPayout(address caller);
    error ProviderNotActive(address provider);
    error NotUnbonding(address provider);
    error BondLocked(uint64 unlockAt);
    error NotTenant(address caller, address tenant);
    error NotProvider(address caller);
    error QuoteExpired(uint64 expiresAt);
    error QuoteAlreadyUsed(address provider, uint96 nonce);
    error InvalidQuote();
    error BadDeposit(uint256 deposit);
    error BadSignature();
    error UnknownLease(uint256 leaseId);
    error TermsMismatch(uint256 leaseId);
    error NotLeaseParty(address caller);
    error LeaseEnded(uint256 leaseId, uint32 end);
    error AlreadySettled(uint256 leaseId);
    error StaleCheckpoint(uint256 cumulativeAmount, uint256 floor);
    error EscrowExhausted(uint256 leaseId);
    error EmptyCheckpoint();
    error BadPeriodEnd(uint64 periodEnd);
    error ClaimAboveCap(uint256 cumulativeAmount, uint256 cap);
    error ClaimTooLate(uint256 leaseId);
    error Slashed(address provider);
    error NoPendingClaim(uint256 leaseId);
    error NotPendingClaim(uint256 leaseId);
    error ChallengeWindowOpen(uint32 payableAt);
    error ChallengeWindowOver(uint32 payableAt);
    error NotInUsageRoot();
    error DisputeRejected();
    error NotEquivocation();
    error AlreadySlashed(address provider);
    error SettlementNotDue(uint256 dueAt);
    error ClaimPending(uint32 payableAt);
    error NothingToWithdraw();

    constructor(
        IERC20 token_,
        address treasury_,
        uint256 minBond_,
        uint32 challengeWindow_,
        uint32 lateWindow_,
        uint64 unbondingDelay_
    ) EIP712("ProviderMarketplace", "2") {
        if (address(token_) == address(0)) revert InvalidParameter("token");
        // The rest of a slash must go somewhere no provider controls: a treasury or a burn address.
        if (treasury_ == address(0)) revert InvalidParameter("treasury");
        if (minBond_ == 0 || minBond_ > type(uint96).max) revert InvalidParameter("minBond");
        // Disputes need time to be sent: a zero window makes every claim final at once.
        if (challengeWindow_ == 0) revert InvalidParameter("challengeWindow");
        if (lateWindow_ == 0) revert InvalidParameter("lateWindow");
        token = token_;
        treasury = treasury_;
        minBond = minBond_;
        challengeWindow = challengeWindow_;
        lateWindow = lateWindow_;
        unbondingDelay = unbondingDelay_;
    }

    // ---------------------------------------------------------------- provider registry

    function registerProvider(string calldata apiUrl, string calldata metadata, uint256 bond, address payout)
        external
        nonReentrant
    {
        ProviderInfo storage p = _providers[msg.sender];
        if (p.status != ProviderStatus.None) revert AlreadyRegistered(msg.sender);
        if (bond < minBond || bond > type(uint96).max) revert BondTooLow(bond, minBond);
        if (payout == address(0)) revert InvalidPayout();
        p.status = ProviderStatus.Active;
        p.bond = uint96(bond);
        p.payout = payout;
        p.apiUrl = apiUrl;
        p.metadata = metadata;
        emit ProviderRegistered(msg.sender, apiUrl, metadata, bond, payout);
        token.safeTransferFrom(msg.sender, address(this), bond);
    }

    function updateProvider(string calldata apiUrl, string calldata metadata) external {
        ProviderInfo storage p = _providers[msg.sender];
        if (p.status != ProviderStatus.Active) revert ProviderNotActive(msg.sender);
        p.apiUrl = apiUrl;
        p.metadata = metadata;
        emit ProviderUpdated(msg.sender, apiUrl, metadata);
    }

    /// Only the payout address itself moves the payout: the provider's hot key cannot redirect money.
    function setPayout(address provider, address payout) external {
        ProviderInfo storage p = _providers[provider];
        if (p.status == ProviderStatus.None) revert ProviderNotActive(provider);
        if (msg.sender != p.payout) revert NotPayout(msg.sender);
        if (payout == address(0)) revert InvalidPayout();
        p.payout = payout;
        emit PayoutChanged(provider, payout);
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
        // Evidence must find a bond to slash for as long as any lease can be claimed or disputed.
        uint64 unlockAt = p.unbondingEndsAt > p.busyUntil ? p.unbondingEndsAt : p.busyUntil;
        if (block.timestamp < unlockAt) revert BondLocked(unlockAt);
        uint256 amount = p.bond;
        address payout = p.payout;
        uint96 earnings = p.earnings;
        delete _providers[msg.sender];
        // Earnings not yet withdrawn stay withdrawable to the same payout.
        if (earnings > 0) {
            _providers[msg.sender].payout = payout;
            _providers[msg.sender].earnings = earnings;
        }
        emit BondWithdrawn(msg.sender, payout, amount);
        token.safeTransfer(payout, amount);
    }

    // ---------------------------------------------------------------- leases

    /// The signed quote is the provider's acceptance: no provider transaction is needed.
    function openLease(Quote calldata quote, bytes calldata providerSig, uint256 deposit)
        external
        nonReentrant
        returns (uint256 leaseId)
    {
        uint256 end = _checkQuote(quote, deposit);
        leaseId = leaseIdOf(quote.provider, quote.nonce);
        Lease storage lease = _leases[leaseId];
        if (lease.termsHash != 0) revert QuoteAlreadyUsed(quote.provider, quote.nonce);
        ProviderInfo storage p = _providers[quote.provider];
        if (p.status != ProviderStatus.Active) revert ProviderNotActive(quote.provider);
        if (ECDSA.recover(hashQuote(quote), providerSig) != quote.provider) revert BadSignature();
        lease.termsHash = _recordTerms(leaseId, quote, deposit);
        lease.end = uint32(end);
        // The last claim can come until the lease is settled, and be disputed for a window after.
        uint64 until = uint64(end + 2 * uint256(challengeWindow) + lateWindow);
        if (until > p.busyUntil) p.busyUntil = until;
        token.safeTransferFrom(msg.sender, address(this), deposit);
    }

    /// Checks what a quote and deposit must satisfy on their own; returns when the lease would end.
    function _checkQuote(Quote calldata quote, uint256 deposit) private view returns (uint256 end) {
        if (msg.sender != quote.tenant) revert NotTenant(msg.sender, quote.tenant);
        if (block.timestamp > quote.expiresAt) revert QuoteExpired(quote.expiresAt);
        end = block.timestamp + quote.maxDuration;
        if (quote.maxDuration == 0 || end > type(uint32).max) revert InvalidQuote();
        // Every record amount and claim cap of the lease must be computable without overflow.
        (bool ok, uint256 ceiling) = _ceilingRate(quote.rates, quote.allocation);
        if (ok) (ok,) = Math.tryMul(ceiling, quote.maxDuration);
        if (!ok) revert InvalidQuote();
        if (deposit == 0 || deposit > type(uint96).max) revert BadDeposit(deposit);
    }

    /// The lease's terms, announced in full and returned as the hash the lease keeps.
    function _recordTerms(uint256 leaseId, Quote calldata quote, uint256 deposit) private returns (bytes32) {
        Terms memory terms = Terms({
            provider: quote.provider,
            tenant: quote.tenant,
            startedAt: uint64(block.timestamp),
            deposit: uint96(deposit),
            rates: quote.rates,
            allocation: quote.allocation
        });
        emit LeaseOpened(leaseId, quote.provider, quote.tenant, quote.manifestHash, quote.maxDuration, terms);
        return keccak256(abi.encode(terms));
    }

    function closeLease(uint256 leaseId, Terms calldata terms) external {
        Lease storage lease = _live(leaseId, terms);
        if (msg.sender != terms.provider && msg.sender != terms.tenant) revert NotLeaseParty(msg.sender);
        uint32 end = lease.end;
        if (block.timestamp >= end) revert LeaseEnded(leaseId, end);
        lease.end = uint32(block.timestamp);
        emit LeaseClosed(leaseId, msg.sender, uint32(block.timestamp));
    }

    /**
     * Returns the rest of the deposit to the tenant. The provider may settle from end +
     * challengeWindow (waiving late claims); anyone from lateWindow later, or at once when the
     * provider was slashed (it cannot claim any more). A matured claim is finalised first.
     */
    function settleLease(uint256 leaseId, Terms calldata terms) external nonReentrant {
        Lease storage lease = _live(leaseId, terms);
        bool slashed = _providers[terms.provider].status == ProviderStatus.Slashed;
        uint256 dueAt = uint256(lease.end) + challengeWindow;
        if (msg.sender != terms.provider && !slashed) dueAt += lateWindow;
        if (block.timestamp < dueAt) revert SettlementNotDue(dueAt);
        uint32 payableAt = lease.payableAt;
        if (payableAt != 0) {
            if (block.timestamp < payableAt) revert ClaimPending(payableAt);
            // A slashed provider's unilateral claims are void: only what the tenant countersigned stays paid.
            if (!slashed) _finalize(leaseId, lease, terms.provider);
        }
        uint96 paid = lease.paid;
        uint256 refund = uint256(terms.deposit) - paid;
        lease.paid = 0;
        lease.pending = 0;
        lease.payableAt = 0;
        lease.end = 0;
        lease.claimDigest = 0;
        emit LeaseSettled(leaseId, paid, refund);
        if (refund > 0) token.safeTransfer(terms.tenant, refund);
    }

    // ---------------------------------------------------------------- payment

    /// Tenant-countersigned checkpoint: credits the increase over what was already paid, at once.
    function redeem(
        Terms calldata terms,
        Checkpoint calldata cp,
        bytes calldata providerSig,
        bytes calldata tenantSig
    ) external {
        Lease storage lease = _live(cp.leaseId, terms);
        bytes32 digest = hashCheckpoint(cp);
        if (ECDSA.recover(digest, providerSig) != terms.provider) revert BadSignature();
        if (ECDSA.recover(digest, tenantSig) != terms.tenant) revert BadSignature();
        uint96 paid = lease.paid;
        if (cp.cumulativeAmount <= paid) revert StaleCheckpoint(cp.cumulativeAmount, paid);
        uint96 target = uint96(Math.min(cp.cumulativeAmount, terms.deposit));
        if (target <= paid) revert EscrowExhausted(cp.leaseId);
        lease.paid = target;
        if (lease.pending != 0 && lease.pending <= target) {
            lease.pending = 0;
            lease.payableAt = 0;
            lease.claimDigest = 0;
        }
        _providers[terms.provider].earnings += target - paid;
        emit CheckpointRedeemed(cp.leaseId, cp.cumulativeAmount, target - paid);
    }

    /**
     * Unilateral claim, by the provider only (so nobody else can restart its window), payable
     * after the challenge window. It must claim more than what is paid or pending; a matured
     * pending claim is finalised first. Capped at ceilingRate * (periodEnd - startedAt) and by the
     * deposit; after end + challengeWindow it is late and LATE_PENALTY_BPS of what it adds stays
     * with the tenant; after another lateWindow it is refused.
     */
    function claim(Terms calldata terms, Checkpoint calldata cp, bytes calldata providerSig) external {
        Lease storage lease = _live(cp.leaseId, terms);
        if (msg.sender != terms.provider) revert NotProvider(msg.sender);
        if (_providers[terms.provider].status == ProviderStatus.Slashed) revert Slashed(terms.provider);
        bytes32 digest = hashCheckpoint(cp);
        if (ECDSA.recover(digest, providerSig) != terms.provider) revert BadSignature();
        if (cp.recordCount == 0) revert EmptyCheckpoint();
        uint256 end = lease.end;
        if (cp.periodEnd <= terms.startedAt || cp.periodEnd > end || cp.periodEnd > block.timestamp) {
            revert BadPeriodEnd(cp.periodEnd);
        }
        if (lease.payableAt != 0 && block.timestamp >= lease.payableAt) _finalize(cp.leaseId, lease, terms.provider);
        bool late = block.timestamp >= end + challengeWindow;
        // Bounded lateness: past the late window the tenant may settle, and nothing is owed any more.
        if (late && block.timestamp >= end + challengeWindow + lateWindow) revert ClaimTooLate(cp.leaseId);
        uint96 target = _claimTarget(terms, cp, lease, late);
        uint32 payableAt = uint32(block.timestamp + challengeWindow);
        lease.pending = target;
        lease.payableAt = payableAt;
        lease.claimDigest = digest;
        emit ClaimSubmitted(cp.leaseId, digest, cp.cumulativeAmount, target, payableAt, late);
    }

    /// What `paid` becomes once the claim is final: above what is paid or pending, within cap and deposit.
    function _claimTarget(Terms calldata terms, Checkpoint calldata cp, Lease storage lease, bool late)
        private
        view
        returns (uint96)
    {
        uint256 floor = Math.max(lease.paid, lease.pending);
        if (cp.cumulativeAmount <= floor) revert StaleCheckpoint(cp.cumulativeAmount, floor);
        (, uint256 ceiling) = _ceilingRate(terms.rates, terms.allocation);
        uint256 cap = ceiling * (cp.periodEnd - terms.startedAt);
        if (cp.cumulativeAmount > cap) revert ClaimAboveCap(cp.cumulativeAmount, cap);
        uint256 target = Math.min(cp.cumulativeAmount, terms.deposit);
        if (late && target > floor) target = floor + ((target - floor) * (BPS - LATE_PENALTY_BPS)) / BPS;
        if (target <= floor) revert EscrowExhausted(cp.leaseId);
        return uint96(target);
    }

    /// Anyone may finalise a claim whose window has passed; the amount goes to earnings.
    function finalizeClaim(uint256 leaseId) external {
        Lease storage lease = _leases[leaseId];
        uint32 payableAt = lease.payableAt;
        if (payableAt == 0) revert NoPendingClaim(leaseId);
        if (block.timestamp < payableAt) revert ChallengeWindowOpen(payableAt);
        _finalize(leaseId, lease, providerOf(leaseId));
    }

    /// Pays the caller's earnings to its payout address: they can go nowhere else.
    function withdraw() external nonReentrant {
        ProviderInfo storage p = _providers[msg.sender];
        uint96 amount = p.earnings;
        if (amount == 0) revert NothingToWithdraw();
        p.earnings = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(p.payout, amount);
    }

    // ---------------------------------------------------------------- disputes

    /// One record of the pending claim that is wrong on its own (see `recordFault`).
    function disputeRecord(Terms calldata terms, Checkpoint calldata cp, ProvenRecord calldata r)
        external
        nonReentrant
    {
        Lease storage lease = _disputable(terms, cp);
        _requireInRoot(cp.usageRoot, r);
        (bool faulty, Fault fault) = recordFault(terms, cp, r.record);
        if (!faulty) revert DisputeRejected();
        _uphold(lease, terms, cp.leaseId, fault);
    }

    /// Two records of the pending claim that cannot stand together (see `pairFault`).
    function disputeRecordPair(
        Terms calldata terms,
        Checkpoint calldata cp,
        ProvenRecord calldata a,
        ProvenRecord calldata b
    ) external nonReentrant {
        Lease storage lease = _disputable(terms, cp);
        _requireInRoot(cp.usageRoot, a);
        _requireInRoot(cp.usageRoot, b);
        (bool faulty, Fault fault) = pairFault(terms, a.record, b.record);
        if (!faulty) revert DisputeRejected();
        _uphold(lease, terms, cp.leaseId, fault);
    }

    /// Two provider-signed checkpoints of one lease that cannot both be true (see `checkpointsConflict`).
    function disputeEquivocation(Terms calldata terms, SignedCheckpoint calldata a, SignedCheckpoint calldata b)
        external
        nonReentrant
    {
        uint256 leaseId = a.checkpoint.leaseId;
        if (b.checkpoint.leaseId != leaseId) revert NotEquivocation();
        Lease storage lease = _known(leaseId, terms);
        _requireSignedBy(terms.provider, a);
        _requireSignedBy(terms.provider, b);
        if (!checkpointsConflict(terms, a.checkpoint, b.checkpoint)) revert NotEquivocation();
        _equivocation(lease, terms, leaseId);
    }

    /**
     * Two provider-signed roots of one lease holding different records at one index below both
     * checkpoints' record counts: two versions of the same usage.
     */
    function disputeConflictingRecords(
        Terms calldata terms,
        SignedCheckpoint calldata a,
        ProvenRecord calldata ra,
        SignedCheckpoint calldata b,
        ProvenRecord calldata rb
    ) external nonReentrant {
        uint256 leaseId = a.checkpoint.leaseId;
        if (b.checkpoint.leaseId != leaseId) revert NotEquivocation();
        Lease storage lease = _known(leaseId, terms);
        _requireSignedBy(terms.provider, a);
        _requireSignedBy(terms.provider, b);
        _requireInRoot(a.checkpoint.usageRoot, ra);
        _requireInRoot(b.checkpoint.usageRoot, rb);
        uint64 index = ra.record.index;
        if (
            rb.record.index != index || index >= a.checkpoint.recordCount || index >= b.checkpoint.recordCount
                || usageLeaf(ra.record) == usageLeaf(rb.record)
        ) revert NotEquivocation();
        _equivocation(lease, terms, leaseId);
    }

    // ---------------------------------------------------------------- evidence rules (pure)

    /**
     * What is wrong with one record r of checkpoint `cp`, checked in this order:
     *  - WrongLease: r.leaseId is not cp.leaseId;
     *  - IndexOutOfRange: r.index >= recordCount;
     *  - BadInterval: t1 <= t0, or there is no room for the records before and after it, each a
     *    second at least: t0 < startedAt + index, or t1 + (recordCount - 1 - index) > periodEnd;
     *  - OverAllocation: its usage is above the allocation over t1 - t0;
     *  - AmountMismatch: its amount is not what the rates give;
     *  - TotalMismatch: index 0 and total != amount; index > 0 and what the total puts before it,
     *    total - amount, is negative or above ceilingRate * (t0 - startedAt); the last record
     *    (index recordCount - 1) and total != cumulativeAmount; another record and what the
     *    checkpoint puts after it, cumulativeAmount - total, is negative or above
     *    ceilingRate * (periodEnd - t1);
     *  - PeriodMismatch: the last record and t1 != periodEnd.
     * The bounds on records not shown are what makes an unserved record cost at most what the
     * allocation allows over its time.
     */
    function recordFault(Terms calldata terms, Checkpoint calldata cp, UsageRecord calldata r)
        public
        pure
        returns (bool faulty, Fault fault)
    {
        if (r.leaseId != cp.leaseId) return (true, Fault.WrongLease);
        if (r.index >= cp.recordCount) return (true, Fault.IndexOutOfRange);
        uint256 after_ = cp.recordCount - 1 - r.index;
        if (r.t1 <= r.t0 || r.t0 < uint256(terms.startedAt) + r.index || uint256(r.t1) + after_ > cp.periodEnd) {
            return (true, Fault.BadInterval);
        }
        if (_overAllocation(terms.allocation, r)) return (true, Fault.OverAllocation);
        (bool ok, uint256 amount) = usageAmount(terms.rates, r);
        if (!ok || amount != r.amount) return (true, Fault.AmountMismatch);
        if (r.index == 0) {
            if (r.total != r.amount) return (true, Fault.TotalMismatch);
        } else if (r.total < r.amount || !_fits(terms, r.total - r.amount, r.t0 - terms.startedAt)) {
            return (true, Fault.TotalMismatch);
        }
        if (after_ == 0) {
            if (r.total != cp.cumulativeAmount) return (true, Fault.TotalMismatch);
            if (r.t1 != cp.periodEnd) return (true, Fault.PeriodMismatch);
        } else if (cp.cumulativeAmount < r.total || !_fits(terms, cp.cumulativeAmount - r.total, cp.periodEnd - r.t1)) {
            return (true, Fault.TotalMismatch);
        }
        return (false, Fault.WrongLease);
    }

    /**
     * What is wrong with two records of one root. With one index: being different
     * (DuplicateIndex). With indexes i < j, k = j - i - 1 records between them:
     *  - NotContiguous: record j starts before record i ends plus a second for each record
     *    between (t0_j < t1_i + k), or, with none between, not exactly where record i ends (a
     *    gap, an overlap, or the two out of order);
     *  - TotalMismatch: what lies between, total_j - total_i - amount_j, is negative, or is not
     *    0 with none between, or is above ceilingRate * (t0_j - t1_i).
     */
    function pairFault(Terms calldata terms, UsageRecord calldata a, UsageRecord calldata b)
        public
        pure
        returns (bool faulty, Fault fault)
    {
        if (a.index == b.index) {
            if (usageLeaf(a) != usageLeaf(b)) return (true, Fault.DuplicateIndex);
            return (false, Fault.WrongLease);
        }
        (UsageRecord calldata first, UsageRecord calldata next) = a.index < b.index ? (a, b) : (b, a);
        uint256 between = next.index - first.index - 1;
        if (next.t0 < uint256(first.t1) + between || (between == 0 && next.t0 != first.t1)) {
            return (true, Fault.NotContiguous);
        }
        (bool ok, uint256 floor) = Math.tryAdd(first.total, next.amount);
        if (!ok || next.total < floor) return (true, Fault.TotalMismatch);
        uint256 charged = next.total - floor;
        if (between == 0 ? charged != 0 : !_fits(terms, charged, next.t0 - first.t1)) return (true, Fault.TotalMismatch);
        return (false, Fault.WrongLease);
    }

    /**
     * Whether two checkpoints of one lease cannot both be prefixes of one valid record sequence.
     * With A the one with fewer records (either when equal):
     *  - same recordCount, and a different usageRoot, cumulativeAmount or periodEnd (one prefix,
     *    two statements; the tree over given records is deterministic);
     *  - more records in B, and B's periodEnd not after A's (records last a second at least and
     *    are contiguous, so a longer prefix ends later);
     *  - more records in B, and B's cumulativeAmount below A's (a running total never falls);
     *  - more records in B, and B's cumulativeAmount above A's by more than
     *    ceilingRate * (B.periodEnd - A.periodEnd) (what the allocation allows in between).
     * resultDigest is not compared: re-signing the same records as the final checkpoint is honest.
     */
    function checkpointsConflict(Terms calldata terms, Checkpoint calldata a, Checkpoint calldata b)
        public
        pure
        returns (bool)
    {
        (Checkpoint calldata shorter, Checkpoint calldata longer) = a.recordCount <= b.recordCount ? (a, b) : (b, a);
        if (shorter.recordCount == longer.recordCount) {
            return shorter.usageRoot != longer.usageRoot || shorter.cumulativeAmount != longer.cumulativeAmount
                || shorter.periodEnd != longer.periodEnd;
        }
        if (longer.periodEnd <= shorter.periodEnd) return true;
        if (longer.cumulativeAmount < shorter.cumulativeAmount) return true;
        (bool ok, uint256 ceiling) = _ceilingRate(terms.rates, terms.allocation);
        if (!ok) return false;
        uint256 allowed;
        (ok, allowed) = Math.tryMul(ceiling, longer.periodEnd - shorter.periodEnd);
        return ok && longer.cumulativeAmount - shorter.cumulativeAmount > allowed;
    }

    /// The amount a record must carry under `rates`; ok is false when it overflows (no valid record does).
    function usageAmount(Rates calldata rates, UsageRecord calldata r) public pure returns (bool ok, uint256 amount) {
        if (r.t1 < r.t0) return (false, 0);
        uint256 term;
        (ok, amount) = Math.tryMul(rates.perSecond, r.t1 - r.t0);
        if (!ok) return (false, 0);
        (ok, term) = _tryMulDiv(rates.perCpuSecond, r.cpuMillis, 1000);
        if (ok) (ok, amount) = Math.tryAdd(amount, term);
        if (!ok) return (false, 0);
        (ok, term) = _tryMulDiv(rates.perGpuSecond, r.gpuMillis, 1000);
        if (ok) (ok, amount) = Math.tryAdd(amount, term);
        if (!ok) return (false, 0);
        (ok, term) = _tryMulDiv(rates.perGiBEgress, r.txBytes, 1 << 30);
        if (ok) (ok, amount) = Math.tryAdd(amount, term);
        if (!ok) return (false, 0);
    }

    /// The most a second of this lease can cost under its allocation (see the contract's comment).
    function ceilingRate(Terms calldata terms) external pure returns (uint256) {
        (bool ok, uint256 ceiling) = _ceilingRate(terms.rates, terms.allocation);
        if (!ok) revert InvalidQuote();
        return ceiling;
    }

    // ---------------------------------------------------------------- views

    function leaseIdOf(address provider, uint96 nonce) public pure returns (uint256) {
        return (uint256(uint160(provider)) << 96) | nonce;
    }

    function providerOf(uint256 leaseId) public pure returns (address) {
        return address(uint160(leaseId >> 96));
    }

    function hashTerms(Terms calldata terms) public pure returns (bytes32) {
        return keccak256(abi.encode(terms));
    }

    function hashQuote(Quote calldata q) public view returns (bytes32) {
        bytes32 ratesHash = keccak256(
            abi.encode(RATES_TYPEHASH, q.rates.perSecond, q.rates.perCpuSecond, q.rates.perGpuSecond, q.rates.perGiBEgress)
        );
        bytes32 allocationHash = keccak256(
            abi.encode(
                ALLOCATION_TYPEHASH, q.allocation.cpuMillicores, q.allocation.gpuCount, q.allocation.egressBytesPerSecond
            )
        );
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    QUOTE_TYPEHASH,
                    q.provider,
                    q.tenant,
                    q.manifestHash,
                    ratesHash,
                    allocationHash,
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
                    CHECKPOINT_TYPEHASH,
                    cp.leaseId,
                    cp.usageRoot,
                    cp.recordCount,
                    cp.cumulativeAmount,
                    cp.periodEnd,
                    cp.resultDigest
                )
            )
        );
    }

    /// The StandardMerkleTree leaf of a usage record.
    function usageLeaf(UsageRecord calldata r) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(r))));
    }

    function getProvider(address provider) external view returns (ProviderInfo memory) {
        return _providers[provider];
    }

    function getLease(uint256 leaseId) external view returns (Lease memory) {
        return _leases[leaseId];
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internal

    /// A lease that exists and whose terms are these; settled or not.
    function _known(uint256 leaseId, Terms calldata terms) private view returns (Lease storage lease) {
        lease = _leases[leaseId];
        bytes32 stored = lease.termsHash;
        if (stored == 0) revert UnknownLease(leaseId);
        if (stored != keccak256(abi.encode(terms))) revert TermsMismatch(leaseId);
    }

    /// A lease that exists, with these terms, not settled yet.
    function _live(uint256 leaseId, Terms calldata terms) private view returns (Lease storage lease) {
        lease = _known(leaseId, terms);
        if (lease.end == 0) revert AlreadySettled(leaseId);
    }

    /// The lease's pending claim is `cp` and its challenge window is still open.
    function _disputable(Terms calldata terms, Checkpoint calldata cp) private view returns (Lease storage lease) {
        lease = _live(cp.leaseId, terms);
        uint32 payableAt = lease.payableAt;
        if (payableAt == 0) revert NoPendingClaim(cp.leaseId);
        if (block.timestamp >= payableAt) revert ChallengeWindowOver(payableAt);
        if (lease.claimDigest != hashCheckpoint(cp)) revert NotPendingClaim(cp.leaseId);
    }

    function _requireInRoot(bytes32 root, ProvenRecord calldata r) private pure {
        if (!MerkleProof.verifyCalldata(r.proof, root, usageLeaf(r.record))) revert NotInUsageRoot();
    }

    function _requireSignedBy(address provider, SignedCheckpoint calldata s) private view {
        if (ECDSA.recover(hashCheckpoint(s.checkpoint), s.signature) != provider) revert BadSignature();
    }

    function _finalize(uint256 leaseId, Lease storage lease, address provider) private {
        if (_providers[provider].status == ProviderStatus.Slashed) revert Slashed(provider);
        uint96 paid = lease.paid;
        uint96 target = lease.pending;
        uint96 credited = target > paid ? target - paid : 0;
        if (credited > 0) lease.paid = target;
        lease.pending = 0;
        lease.payableAt = 0;
        lease.claimDigest = 0;
        _providers[provider].earnings += credited;
        emit ClaimFinalized(leaseId, credited);
    }

    function _dropClaim(Lease storage lease) private {
        lease.pending = 0;
        lease.payableAt = 0;
        lease.claimDigest = 0;
    }

    /// A usage dispute upheld: the claim goes, and the provider is slashed if it still has a bond.
    function _uphold(Lease storage lease, Terms calldata terms, uint256 leaseId, Fault fault) private {
        _dropClaim(lease);
        emit ClaimDisputed(leaseId, msg.sender, fault);
        if (_providers[terms.provider].status != ProviderStatus.Slashed) _slash(terms, leaseId, fault);
    }

    function _equivocation(Lease storage lease, Terms calldata terms, uint256 leaseId) private {
        if (_providers[terms.provider].status == ProviderStatus.Slashed) revert AlreadySlashed(terms.provider);
        if (lease.payableAt != 0) {
            _dropClaim(lease);
            emit ClaimDisputed(leaseId, msg.sender, Fault.Equivocation);
        }
        _slash(terms, leaseId, Fault.Equivocation);
    }

    /**
     * The whole bond goes: at most FINDER_REWARD_BPS to the sender of the evidence, at most
     * COMPENSATION_BPS and the lease's deposit to its tenant, the rest to the treasury. Neither
     * share goes to the provider or its payout address.
     */
    function _slash(Terms calldata terms, uint256 leaseId, Fault fault) private {
        ProviderInfo storage p = _providers[terms.provider];
        uint256 bond = p.bond;
        address payout = p.payout;
        p.bond = 0;
        p.status = ProviderStatus.Slashed;
        bool finderIsProvider = msg.sender == terms.provider || msg.sender == payout;
        bool tenantIsProvider = terms.tenant == terms.provider || terms.tenant == payout;
        uint256 reward = finderIsProvider ? 0 : (bond * FINDER_REWARD_BPS) / BPS;
        uint256 compensation = tenantIsProvider ? 0 : Math.min(terms.deposit, (bond * COMPENSATION_BPS) / BPS);
        uint256 rest = bond - reward - compensation;
        emit ProviderSlashed(terms.provider, leaseId, fault, bond, msg.sender, reward, compensation, rest);
        if (reward > 0) token.safeTransfer(msg.sender, reward);
        if (compensation > 0) token.safeTransfer(terms.tenant, compensation);
        if (rest > 0) token.safeTransfer(treasury, rest);
    }

    function _overAllocation(Allocation calldata alloc, UsageRecord calldata r) private pure returns (bool) {
        uint256 seconds_ = r.t1 - r.t0;
        return r.cpuMillis > uint256(alloc.cpuMillicores) * seconds_ || r.gpuMillis > uint256(alloc.gpuCount) * seconds_ * 1000
            || r.txBytes > uint256(alloc.egressBytesPerSecond) * seconds_;
    }

    /// Whether `amount` is at most what the allocation allows over `seconds` (ceilingRate * seconds).
    function _fits(Terms calldata terms, uint256 amount, uint256 seconds_) private pure returns (bool) {
        (bool ok, uint256 ceiling) = _ceilingRate(terms.rates, terms.allocation);
        if (ok) (ok, ceiling) = Math.tryMul(ceiling, seconds_);
        return !ok || amount <= ceiling;
    }

    /// perSecond + ceil(perCpuSecond * cpuMillicores / 1000) + perGpuSecond * gpuCount + ceil(perGiBEgress * egress / 2^30).
    function _ceilingRate(Rates calldata rates, Allocation calldata alloc) private pure returns (bool ok, uint256 ceiling) {
        uint256 term;
        ceiling = rates.perSecond;
        (ok, term) = Math.tryMul(rates.perCpuSecond, alloc.cpuMillicores);
        if (ok) (ok, ceiling) = Math.tryAdd(ceiling, Math.ceilDiv(term, 1000));
        if (!ok) return (false, 0);
        (ok, term) = Math.tryMul(rates.perGpuSecond, alloc.gpuCount);
        if (ok) (ok, ceiling) = Math.tryAdd(ceiling, term);
        if (!ok) return (false, 0);
        (ok, term) = Math.tryMul(rates.perGiBEgress, alloc.egressBytesPerSecond);
        if (ok) (ok, ceiling) = Math.tryAdd(ceiling, Math.ceilDiv(term, 1 << 30));
        if (!ok) return (false, 0);
    }

    /// x * y / d rounded down, false when the result does not fit (the product may).
    function _tryMulDiv(uint256 x, uint256 y, uint256 d) private pure returns (bool, uint256) {
        (uint256 high,) = Math.mul512(x, y);
        if (high >= d) return (false, 0);
        return (true, Math.mulDiv(x, y, d));
    }
}
