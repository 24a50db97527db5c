/*
 * nocaps: the launchers' interpreter on x86-64 Linux (scripts/nocaps.mjs
 * turns the bytes of this code into dist/nocaps; test/caps.ts assembles this
 * file and checks that they are the same). A launcher's first line is
 *
 *     #!/path/to/nocaps [NAME=VALUE ...] RUNTIME
 *
 * and the kernel runs nocaps with argv = [nocaps, "[NAME=VALUE ...] RUNTIME",
 * launcher, args...]. It splits that second argument at blanks, empties the
 * capability bounding set (PR_CAPBSET_DROP of each capability, up to the
 * first PR_CAPBSET_READ the kernel rejects), then the effective, permitted
 * and inheritable sets (capset; the kernel empties the ambient set with
 * them, as it keeps only ambient capabilities both permitted and
 * inheritable), and execs RUNTIME with argv = [RUNTIME, launcher, args...]
 * and the NAME=VALUE words before the inherited environment: setpriv's
 * --bounding-set=-all --inh-caps=-all --ambient-caps=-all and env -S in one
 * static program of a few hundred bytes, so that an upcall pays one small
 * exec instead of two dynamically linked ones.
 *
 * A process that holds no permitted capability (not root) may not change
 * its bounding set and has nothing in it to lose: that step is skipped, as
 * setpriv leaves it. Any other failure is fatal, as cltrack_set_caps'
 * failure is to nfs-utils' nfsdcltrack: a message on stderr, exit status 127,
 * RUNTIME never started.
 *
 * Built with: as -o nocaps.o nocaps.S && objcopy -O binary -j .text nocaps.o
 * (position-independent: no relocation, strings addressed from %rip).
 */
	.text
	.globl _start
_start:
	mov	(%rsp), %r12		/* argc */
	lea	8(%rsp), %r13		/* argv */
	lea	8(%r13,%r12,8), %r14	/* envp: after argv's NULL */
	lea	msg_usage(%rip), %r15	/* the message if we fail */
	cmp	$2, %r12
	jb	fail
	mov	8(%r13), %rsi		/* argv[1]: "[NAME=VALUE ...] RUNTIME" */

	/* room for the new environment: at most one word per byte of argv[1],
	   then the inherited entries (%rcx of them) and a NULL */
	xor	%ecx, %ecx
count_env:
	cmpq	$0, (%r14,%rcx,8)
	je	count_words
	inc	%rcx
	jmp	count_env
count_words:
	xor	%edx, %edx
strlen:
	cmpb	$0, (%rsi,%rdx)
	je	alloc
	inc	%rdx
	cmp	$4096, %rdx
	ja	fail
	jmp	strlen
alloc:
	lea	2(%rcx,%rdx), %rax
	shl	$3, %rax
	sub	%rax, %rsp
	and	$-16, %rsp
	mov	%rsp, %rbx		/* the new envp */
	xor	%edi, %edi		/* entries in it */
	xor	%r8d, %r8d		/* the last word seen (0: none yet) */

	/* split argv[1] in place; every word but the last goes into envp */
next_word:
	mov	(%rsi), %al
	cmp	$' ', %al
	je	blank
	cmp	$'\t', %al
	je	blank
	test	%al, %al
	jz	words_done
	test	%r8, %r8		/* a word follows the last: that one was NAME=VALUE */
	jz	new_word
	test	%r9d, %r9d
	jz	fail			/* a word without '=' before RUNTIME */
	mov	%r8, (%rbx,%rdi,8)
	inc	%rdi
new_word:
	mov	%rsi, %r8
	xor	%r9d, %r9d		/* has an '=' */
in_word:
	mov	(%rsi), %al
	test	%al, %al
	jz	words_done
	cmp	$' ', %al
	je	end_word
	cmp	$'\t', %al
	je	end_word
	cmp	$'=', %al
	jne	1f
	mov	$1, %r9d
1:	inc	%rsi
	jmp	in_word
end_word:
	movb	$0, (%rsi)
blank:
	inc	%rsi
	jmp	next_word
words_done:
	test	%r8, %r8
	jz	fail			/* no RUNTIME */
	mov	%r8, 8(%r13)		/* argv[1] = RUNTIME: the new argv is &argv[1] */
	xor	%ecx, %ecx
copy_env:
	mov	(%r14,%rcx,8), %rax	/* then the inherited environment, its NULL included */
	mov	%rax, (%rbx,%rdi,8)
	inc	%rdi
	inc	%rcx
	test	%rax, %rax
	jnz	copy_env

	/* capget: struct __user_cap_header_struct { version 3, pid 0 (self) },
	   then two __user_cap_data_struct { effective, permitted, inheritable } */
	lea	msg_caps(%rip), %r15
	sub	$32, %rsp
	movl	$0x20080522, (%rsp)
	movl	$0, 4(%rsp)
	mov	$125, %eax		/* capget */
	mov	%rsp, %rdi
	lea	8(%rsp), %rsi
	syscall
	test	%eax, %eax
	jnz	fail
	mov	12(%rsp), %eax		/* permitted, low and high words */
	or	24(%rsp), %eax
	jz	clear_sets
	xor	%r12d, %r12d		/* capability number */
bounding:
	mov	$157, %eax		/* prctl(PR_CAPBSET_READ, cap): < 0 past the last */
	mov	$23, %edi
	mov	%r12, %rsi
	syscall
	test	%eax, %eax
	js	clear_sets
	mov	$157, %eax		/* prctl(PR_CAPBSET_DROP, cap) */
	mov	$24, %edi
	mov	%r12, %rsi
	syscall
	test	%eax, %eax
	jnz	fail
	inc	%r12
	jmp	bounding
clear_sets:
	xor	%eax, %eax
	mov	%rax, 8(%rsp)
	mov	%rax, 16(%rsp)
	mov	%rax, 24(%rsp)
	movl	$0x20080522, (%rsp)
	mov	$126, %eax		/* capset: all three sets empty */
	mov	%rsp, %rdi
	lea	8(%rsp), %rsi
	syscall
	test	%eax, %eax
	jnz	fail

	lea	msg_exec(%rip), %r15
	mov	8(%r13), %rdi		/* execve(RUNTIME, &argv[1], envp) */
	lea	8(%r13), %rsi
	mov	%rbx, %rdx
	mov	$59, %eax
	syscall

fail:	/* %r15: a length byte, then the message; write(2, ...), exit_group(127) */
	movzbl	(%r15), %edx
	lea	1(%r15), %rsi
	mov	$2, %edi
	mov	$1, %eax
	syscall
	mov	$127, %edi
	mov	$231, %eax
	syscall

	.macro message label, text
\label:	.byte	2f - 1f
1:	.ascii	"\text"
2:
	.endm
	message msg_usage, "nocaps: usage: #!nocaps [NAME=VALUE ...] RUNTIME\n"
	message msg_caps, "nocaps: cannot drop capabilities\n"
	message msg_exec, "nocaps: cannot execute the runtime\n"
